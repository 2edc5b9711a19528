"""Shared pytest set-up: a deterministic Hypothesis profile (same examples on every run),
and a spy on the widgets' figure builders."""

import pytest
from hypothesis import HealthCheck, settings

settings.register_profile(
    "cvprep",
    derandomize=True,  # reproducible: examples come from a fixed seed
    deadline=None,  # the first torch call in a process is slow; speed lives in benchmarks/
    suppress_health_check=[HealthCheck.too_slow],
    print_blob=True,
)
settings.load_profile("cvprep")


@pytest.fixture
def figure_calls(monkeypatch):
    """``figure_calls(module)`` records the positional arguments of every call to
    ``module.figure`` (which still draws). Outside a kernel an explorer's Output widget
    captures nothing, so the explorer tests watch what it asks the builder to draw."""

    def spy(module) -> list[tuple]:
        calls = []
        real = module.figure
        monkeypatch.setattr(module, "figure", lambda *args: calls.append(args) or real(*args))
        return calls

    return spy


@pytest.fixture(scope="module")
def one_torch_thread():
    """For test modules of tiny tensors (use with ``pytest.mark.usefixtures``).

    A second intra-op thread only adds hand-offs there, and on a loaded machine (the
    suite runs two workers on two cores) each one waits: a 4-step PGD took 0.4 s
    instead of 8 ms. The thread count is put back after the module.
    """
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
