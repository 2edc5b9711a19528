"""Kernels forked from a warm interpreter (autograder/zygote.py) behave like launched ones:
sandboxed, one process per student, interruptible, killable, and noticed when they die."""

import asyncio
import contextlib
import json
import os
import sys
import tempfile
from pathlib import Path

import pytest
from jupyter_client.manager import AsyncKernelManager

from autograder import course, sandbox, zygote

POLICY, UNISOLATED = sandbox.plan([course.REPO], Path(tempfile.mkdtemp(prefix="zygote-scratch-")))


@pytest.fixture(scope="module")
def kernelspecs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("jupyter")
    sandbox.write_kernelspec(folder, POLICY)
    return folder


@pytest.fixture
def student(tmp_path):
    folder = tmp_path / "student" / "01-convolution"
    folder.mkdir(parents=True)
    (folder / "helper.py").write_text("ANSWER = 42\n")
    return folder


def run(coroutine):
    return asyncio.run(coroutine)


async def start(kernelspecs, cwd):
    os.environ["JUPYTER_PATH"] = str(kernelspecs)
    km = AsyncKernelManager(kernel_name=sandbox.KERNEL_NAME, client_class="autograder.zygote.QuickReadyClient")
    await km.start_kernel(cwd=str(cwd))
    kc = km.client()
    kc.start_channels()
    await kc.wait_for_ready(timeout=30)
    return km, kc


@contextlib.asynccontextmanager
async def kernel(kernelspecs, cwd):
    """A started kernel and its client, shut down on the way out."""
    km, kc = await start(kernelspecs, cwd)
    try:
        yield km, kc
    finally:
        await stop(km, kc)


async def evaluate(kc, expression, timeout=30):
    """The value of ``expression`` in the kernel (through JSON), or the error's name."""
    outputs = []
    reply = await kc.execute_interactive(f"import json as _j; print(_j.dumps({expression}))", timeout=timeout,
                                         output_hook=outputs.append)
    if reply["content"]["status"] != "ok":
        return reply["content"]["ename"]
    text = "".join(m["content"].get("text", "") for m in outputs if m["msg_type"] == "stream")
    return json.loads(text)


async def stop(km, kc):
    kc.stop_channels()
    await km.shutdown_kernel(now=True)


def test_the_kernelspec_names_the_forking_provisioner(kernelspecs):
    spec = json.loads((kernelspecs / "kernels" / sandbox.KERNEL_NAME / "kernel.json").read_text())
    assert spec["metadata"]["kernel_provisioner"]["provisioner_name"] == zygote.PROVISIONER_NAME
    assert spec["argv"][1:3] == zygote.LAUNCHER  # the same command works without the provisioner


def test_a_forked_kernel_is_a_sandboxed_child_of_the_zygote(kernelspecs, student):
    async def check():
        async with kernel(kernelspecs, student) as (km, kc):
            assert isinstance(km.provisioner, zygote.ForkingProvisioner)
            assert isinstance(km.provisioner.process, zygote.ForkedKernel)
            facts = await evaluate(kc, "dict(pid=__import__('os').getpid(), ppid=__import__('os').getppid(), "
                                       "uid=__import__('os').getuid(), cwd=__import__('os').getcwd(), "
                                       "threads=__import__('os').environ.get('OMP_NUM_THREADS'), "
                                       "cvprep='cvprep' in __import__('sys').modules, "
                                       "torch='torch' in __import__('sys').modules, "
                                       "answer=__import__('helper').ANSWER)")
            return km.provisioner.pid, facts

    pid, facts = run(check())
    assert facts["pid"] == pid and facts["ppid"] != os.getpid()  # forked by the zygote, not by us
    assert facts["answer"] == 42  # the student's own files are importable from the working folder
    assert facts["threads"] == "1"
    assert facts["cvprep"] is False  # the zygote never imports the reference package
    assert facts["torch"] is False  # nor torch, unless the assignment asks for it
    if UNISOLATED is None:
        assert facts["uid"] != 0 and facts["cwd"] == sandbox.WORK
    else:
        assert facts["cwd"] != str(student)  # a scratch copy even when unisolated


def test_two_kernels_are_two_processes_with_separate_state(kernelspecs, student):
    async def check():
        async with kernel(kernelspecs, student) as (first, first_client), \
                kernel(kernelspecs, student) as (second, second_client):
            await first_client.execute_interactive("secret = 'first student'", timeout=30)
            return (first.provisioner.pid, second.provisioner.pid,
                    await evaluate(second_client, "'secret' in globals()"))

    first_pid, second_pid, leaked = run(check())
    assert first_pid != second_pid
    assert leaked is False


def test_an_interrupt_stops_a_busy_cell_and_the_kernel_lives_on(kernelspecs, student):
    async def check():
        async with kernel(kernelspecs, student) as (km, kc):
            busy = asyncio.ensure_future(kc.execute_interactive("while True: pass", timeout=30))
            await asyncio.sleep(0.5)
            await km.interrupt_kernel()
            reply = await busy
            return reply["content"].get("ename"), await evaluate(kc, "1 + 1")

    assert run(check()) == ("KeyboardInterrupt", 2)


def test_a_killed_kernel_is_gone_and_a_dead_one_is_noticed(kernelspecs, student):
    async def check():
        km, kc = await start(kernelspecs, student)
        pid = km.provisioner.pid
        await km.shutdown_kernel(now=True)
        killed_alive = await km.is_alive()
        kc.stop_channels()
        km, kc = await start(kernelspecs, student)
        kc.execute("import os; os._exit(3)")
        for _ in range(100):
            if not await km.is_alive():
                break
            await asyncio.sleep(0.05)
        died_alive = await km.is_alive()
        await stop(km, kc)
        return pid, killed_alive, died_alive

    pid, killed_alive, died_alive = run(check())
    assert killed_alive is False and died_alive is False
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


def test_kernels_exit_when_their_zygote_does(kernelspecs, student):
    # A grader killed mid-batch closes its zygote's input; the zygote's kernels must follow.
    async def check():
        km, kc = await start(kernelspecs, student)
        pid = km.provisioner.pid
        zygote.Zygote.for_python(sys.executable).close()
        for _ in range(100):
            if not await km.is_alive():
                break
            await asyncio.sleep(0.1)
        alive = await km.is_alive()
        await stop(km, kc)
        return pid, alive

    pid, alive = run(check())
    assert alive is False
    assert process_state(pid) in {None, "Z"}  # gone, or a zombie waiting for init to reap it


def process_state(pid):
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return None
    return next(line.split()[1] for line in status.splitlines() if line.startswith("State:"))


def test_the_kernel_starts_the_usual_way_when_the_zygote_fails(kernelspecs, student, monkeypatch):
    def broken(python, preload=()):
        raise zygote.ZygoteError("no zygote today")

    monkeypatch.setattr(zygote.Zygote, "for_python", broken)

    async def check():
        async with kernel(kernelspecs, student) as (km, kc):
            return type(km.provisioner.process).__name__, await evaluate(kc, "6 * 7")

    assert run(check()) == ("Popen", 42)


def test_waiting_for_a_dead_kernel_fails_instead_of_hanging(kernelspecs, student):
    async def check():
        km, kc = await start(kernelspecs, student)
        await km.shutdown_kernel(now=True)
        try:
            await kc.wait_for_ready(timeout=5)
        finally:
            kc.stop_channels()

    with pytest.raises(RuntimeError, match="died|respond"):
        run(check())


def test_an_assignment_that_imports_torch_gets_it_preloaded(tmp_path, student):
    from autograder import batch

    exercises = course.EXERCISES
    assert batch.heavy_imports(exercises / "01-convolution" / "convolution.ipynb") == ()  # NumPy only
    assert batch.heavy_imports(exercises / "04-architectures" / "architectures.ipynb") == ("torch", "torchvision")
    sandbox.write_kernelspec(tmp_path, POLICY, preload=["torch"])

    async def check():
        async with kernel(tmp_path, student) as (km, kc):
            return await evaluate(kc, "'torch' in __import__('sys').modules")

    assert run(check()) is True
