"""Counting a network's cost: ``cvprep.cost.profile`` against fvcore's ``FlopCountAnalysis``
and torch's ``FlopCounterMode``, on torchvision's ResNet-50 (and, with ``--models``,
MobileNetV2 and ViT-B/16). (A benchmark, not a test.)

For each model (``weights=None``: the counts depend only on the shapes) and input
``(1, 3, 224, 224)``, in one run:

* **Time.** Each tool is timed end to end, as a user calls it, and compared with a bare
  forward pass under ``torch.no_grad()`` (the floor: every tool runs one forward):

  - ``cvprep.cost.profile(model, input_size)`` (hooks + a ``TorchFunctionMode``, no_grad);
  - ``FlopCountAnalysis(model, x).total()`` (a ``torch.jit`` trace, autograd on, which
    is fvcore's default);
  - ``with torch.no_grad(), FlopCounterMode(display=False): model(x)``.

  Best of ``--repeats`` runs after one warm-up, ``time.perf_counter``, the tools taking
  turns in each round so that a noisy machine slows them alike; once with
  ``torch.set_num_threads(1)`` and once with torch's default thread count. Also the
  minor page faults per call (memory taken fresh from the kernel rather than reused),
  and, with ``--cprofile``, where one ``cvprep.profile`` call spends its time.
* **Totals.** Each tool's total as it reports it, then the convolution + linear part of
  each converted to multiply-accumulates (MACs) and checked for exact agreement, then
  every difference explained with numbers recomputed from the shapes:

  - cvprep reports ``macs`` (one per multiply-accumulate) of ``Conv2d`` and ``Linear``
    modules (and of ``nn.MultiheadAttention`` blocks, if the installed ``cost.py`` counts
    them: the benchmark checks either way), ``flops = 2 * macs``, and lists everything
    else in ``other_ops``;
  - fvcore counts one "flop" per MAC and by default also counts batch norm, layer norm
    and adaptive pooling; operators without a handler (additions, max pooling, ReLU6,
    attention...) are skipped with a warning;
  - FlopCounterMode counts 2 FLOPs per MAC, for convolution and mm/addmm/bmm (and the
    CUDA attention kernels) only; every other operator counts 0.

  For ViT-B/16 the attention is explained apart (which tool counts the q, k, v and
  output projections, and the q.k^T and attn.v matmuls, and why).

fvcore is not a dependency of the project. Install it into the venv with

    .venv/bin/python -m pip install fvcore

Without it, the benchmark says so and compares the other two.

    .venv/bin/python benchmarks/bench_cost.py [--repeats 5] [--threads 1 2]
        [--models resnet50 mobilenet_v2 vit_b_16 | --models all] [--cprofile]
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import logging
import math
import os
import pstats
import resource
import textwrap
import time
import warnings
from collections import Counter
from collections.abc import Callable

import torch
import torchvision
from torch import nn
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.overrides import TorchFunctionMode
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import FlopCounterMode, flop_registry

from cvprep.cost import CostReport, profile

try:
    with warnings.catch_warnings():  # fvcore's import calls the deprecated torch.jit.script
        warnings.simplefilter("ignore", FutureWarning)
        from fvcore.nn import FlopCountAnalysis, parameter_count
except ImportError:  # not a project dependency
    FlopCountAnalysis = parameter_count = None

FVCORE_INSTALL = ".venv/bin/python -m pip install fvcore"
MODELS = ["resnet50", "mobilenet_v2", "vit_b_16"]
INPUT_SIZE = (1, 3, 224, 224)

# fvcore's operator names (by_operator() keys) for convolution and linear layers; with
# recent torch a linear layer traces to aten::linear, with older torch to aten::addmm.
FV_CONV = ("conv",)
FV_LINEAR = ("linear", "addmm", "mm")
FV_MATMUL = ("matmul", "bmm", "einsum")  # products of two activations (attention)
# FlopCounterMode's operators for convolution and linear layers (2 FLOPs per MAC).
FCM_CONV = ("aten.convolution",)
FCM_LINEAR = ("aten.addmm", "aten.mm")
FCM_NO_GRAD, FCM_GRAD, FCM_MATH = ("FlopCounterMode (no_grad)", "FlopCounterMode (autograd on)",
                                  "FlopCounterMode (autograd on, MATH sdpa)")
FCM_MATMUL = ("aten.bmm", "aten.baddbmm", "aten._scaled_dot_product_efficient_attention",
              "aten._scaled_dot_product_flash_attention", "aten._scaled_dot_product_cudnn_attention")
# fvcore's default rules for the extra operators it counts (fvcore/nn/jit_handles.py), as
# (torch function watched here, fvcore "flops" per input element, the module's class, explanation).
FV_RULES = {
    "batch_norm": (torch.nn.functional.batch_norm, 2, "BatchNorm2d",
                   "eval mode with an affine scale and shift: 2 per element of its input"),
    "layer_norm": (torch.nn.functional.layer_norm, 5, "LayerNorm",
                   "affine: 5 per element of its input (fvcore's rough estimate)"),
    "adaptive_avg_pool2d": (torch.nn.functional.adaptive_avg_pool2d, 1, "AdaptiveAvgPool2d",
                            "1 per element of its input"),
}
# What cvprep calls the operators fvcore skips, to point at the matching other_ops rows.
CVPREP_KIND = {"aten::add": "add", "aten::add_": "add", "aten::max_pool2d": "MaxPool2d", "aten::hardtanh_": "ReLU6",
               "aten::gelu": "GELU", "aten::relu_": "ReLU"}

logging.getLogger("fvcore").setLevel(logging.ERROR)  # we print its skipped operators ourselves


# ---------------------------------------------------------------- running the tools


def run_fvcore(model: nn.Module, x: torch.Tensor):
    return FlopCountAnalysis(model, x).unsupported_ops_warnings(False).uncalled_modules_warnings(False)


def run_flop_counter(model: nn.Module, x: torch.Tensor, grad: bool = False, math_sdpa: bool = False) -> dict[str, int]:
    """FlopCounterMode's per-operator FLOPs, e.g. {"aten.convolution": ...}."""
    counter = FlopCounterMode(display=False)
    backends = sdpa_kernel(SDPBackend.MATH) if math_sdpa else contextlib.nullcontext()
    with torch.set_grad_enabled(grad), backends, counter:
        model(x)
    return {str(op): flops for op, flops in counter.get_flop_counts()["Global"].items()}


def best_seconds(tools: dict[str, Callable[[], object]], repeats: int) -> tuple[dict[str, float], dict[str, float]]:
    """Best time of each tool over ``repeats`` rounds, after one warm-up; tools take turns in a round.

    Also returns each tool's mean number of minor page faults per call: memory the process
    gets fresh from the kernel (zero-filled on first touch) instead of reusing freed memory.
    """
    for fn in tools.values():
        fn()  # warm up: first-call allocations, lazy imports, dispatcher caches
    best = dict.fromkeys(tools, math.inf)
    faults = dict.fromkeys(tools, 0.0)
    for _ in range(repeats):
        for name, fn in tools.items():
            before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
            start = time.perf_counter()
            fn()
            best[name] = min(best[name], time.perf_counter() - start)
            faults[name] += (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / repeats
    return best, faults


class FunctionInputs(TorchFunctionMode):
    """Calls and input elements of some torch functions (the level fvcore's trace sees)."""

    def __init__(self, functions) -> None:
        super().__init__()
        self.functions = set(functions)
        self.calls: Counter = Counter()
        self.elements: Counter = Counter()

    def __torch_function__(self, func, types, args=(), kwargs=None):
        if func in self.functions:
            self.calls[func] += 1
            self.elements[func] += args[0].numel()
        return func(*args, **(kwargs or {}))


class AtenOps(TorchDispatchMode):
    """How often each aten operator runs (the level FlopCounterMode sees)."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: Counter = Counter()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.calls[func._overloadpacket] += 1
        return func(*args, **(kwargs or {}))


def aten_ops(model: nn.Module, x: torch.Tensor, grad: bool) -> Counter:
    recorder = AtenOps()
    with torch.set_grad_enabled(grad), recorder:
        model(x)
    return recorder.calls


# ---------------------------------------------------------------- printing


def n(value: float) -> str:
    return f"{int(value):,}" if float(value).is_integer() else f"{value:,.1f}"


def wrap(text: str, indent: str = "    ") -> str:
    return textwrap.fill(text, width=110, initial_indent=indent, subsequent_indent=indent + "  ")


def ops_line(counts: dict[str, float]) -> str:
    return ", ".join(f"{op} {n(v)}" for op, v in sorted(counts.items(), key=lambda kv: -kv[1]))


def pick(counts: dict[str, float], names) -> float:
    return sum(counts.get(name, 0) for name in names)


def compared(ours: float, theirs: float) -> str:
    if abs(theirs / ours - 1) < 0.05:
        return "as fast as (within 5%, inside this machine's noise)"
    return "faster than" if ours < theirs else "SLOWER than"


def timing(model: nn.Module, x: torch.Tensor, repeats: int, threads: list[int]) -> None:
    def bare():
        with torch.no_grad():
            model(x)

    def flop_counter():
        with torch.no_grad(), FlopCounterMode(display=False):
            model(x)

    # short name -> (what is timed, the call)
    tools = {"forward": ("forward pass only, torch.no_grad (the floor)", bare),
             "cvprep": ("cvprep.cost.profile(model, size)", lambda: profile(model, tuple(x.shape)))}
    if FlopCountAnalysis is not None:
        tools["fvcore"] = ("fvcore FlopCountAnalysis(model, x).total()", lambda: run_fvcore(model, x).total())
    else:
        print(f"  (fvcore not installed: not timed; {FVCORE_INSTALL})")
    tools["FlopCounterMode"] = ("with no_grad(), FlopCounterMode(): model(x)", flop_counter)
    default = torch.get_num_threads()
    results, faults = {}, {}
    for count in threads:
        torch.set_num_threads(count)
        results[count], faults[count] = best_seconds({name: fn for name, (_, fn) in tools.items()}, repeats)
    torch.set_num_threads(default)
    plural = lambda t: f"{t} thread{'s' if t > 1 else ''}"  # noqa: E731
    header = "".join(f"{plural(t):>30}" for t in threads)
    print(f"  time: best of {repeats} after a warm-up; x: relative to the bare forward; page faults per call"
          f"\n    {'':<52}{header}")
    for name, (label, _) in tools.items():
        cells = "".join(f"{1e3 * results[t][name]:9.1f} ms {results[t][name] / results[t]['forward']:5.2f}x"
                        f"{faults[t][name]:8.0f} pf" for t in threads)
        print(f"    {label:<52}{cells}")
    for t in threads:
        ours = results[t]["cvprep"]
        verdict = ", ".join(f"{compared(ours, s)} {name} ({s / ours:.2f}x)"
                            for name, s in results[t].items() if name not in ("forward", "cvprep"))
        print(f"    {plural(t)}: cvprep.profile is {verdict}; "
              f"{1e3 * (ours - results[t]['forward']):+.1f} ms over the bare forward pass")
    worst = max(faults[t]["cvprep"] for t in threads)
    if worst > 10 * max(max(faults[t]["forward"] for t in threads), 100):
        print(wrap(f"cvprep.profile takes {worst:,.0f} page faults per call (x 4 KiB = {worst * 4 / 1024:.0f} MiB "
                   "of fresh memory): it keeps every output alive until the end, so the allocator cannot reuse "
                   "freed buffers, and the time to fault them in is part of its overhead", "    "))


def attention_parts(model: nn.Module, x: torch.Tensor, blocks: list[nn.MultiheadAttention]) -> dict:
    """MACs of the attention blocks, from the shapes they see: projections and the two matmuls."""
    shapes = []
    hooks = [m.register_forward_pre_hook(lambda m, args: shapes.append((m, args[0].shape, args[1:2] or args[0:1])))
             for m in blocks]  # self-attention: key = query; torchvision passes query, key, value positionally
    with torch.no_grad():
        model(x)
    for hook in hooks:
        hook.remove()
    projections = matmuls = 0
    for m, query, (key,) in shapes:
        (batch, length), source = (query[:2] if m.batch_first else query[1::-1]), key.shape[1 if m.batch_first else 0]
        e = m.embed_dim
        # q: L x E -> E, k: S x kdim -> E, v: S x vdim -> E, output: L x E -> E
        projections += batch * (length * e * e + source * (m.kdim + m.vdim) * e + length * e * e)
        # per head: q.k^T is L x S x (E / h), attn.v is L x S x (E / h); times h heads
        matmuls += batch * 2 * length * source * e
    return {"blocks": len(shapes), "heads": shapes[0][0].num_heads, "embed": shapes[0][0].embed_dim,
            "batch": batch, "tokens": length, "projections": projections, "matmuls": matmuls}


def compare(model: nn.Module, x: torch.Tensor) -> None:
    report: CostReport = profile(model, tuple(x.shape))
    kinds = Counter(row.kind for row in report.other_ops)
    layer_kinds = Counter(row.kind for row in report.layers)
    blocks = [m for m in model.modules() if isinstance(m, nn.MultiheadAttention)]
    attn = attention_parts(model, x, blocks) if blocks else {"projections": 0, "matmuls": 0}
    fcm = run_flop_counter(model, x)  # the timed configuration: no_grad
    fcm_grad = run_flop_counter(model, x, grad=True)
    fcm_ops = aten_ops(model, x, grad=False)
    watch = FunctionInputs(rule[0] for rule in FV_RULES.values())
    with watch:
        model(x)  # autograd on, as in fvcore's trace

    print("  totals, as each tool reports them")
    print(f"    cvprep.profile : macs {n(report.macs)}  flops (= 2 x macs) {n(report.flops)}  "
          f"params {n(report.params)}")
    print(wrap(f"layers (the total): {', '.join(f'{k} x{v}' for k, v in layer_kinds.most_common())}; "
               f"other_ops (not in the total): {', '.join(f'{k} x{v}' for k, v in kinds.most_common())}", "      "))
    fv = analysis = None
    if FlopCountAnalysis is None:
        print(f"    fvcore         : NOT INSTALLED (not a project dependency), skipped. Install: {FVCORE_INSTALL}")
    else:
        analysis = run_fvcore(model, x)
        fv_total = analysis.total()
        fv = dict(analysis.by_operator())
        skipped = analysis.unsupported_ops()
        print(f"    fvcore         : total {n(fv_total)} \"flops\" (1 per MAC)  params {n(parameter_count(model)[''])}")
        print(wrap(f"by_operator(): {ops_line(fv)}", "      "))
        print(wrap("skipped with a warning (counted 0): "
                   + ", ".join(f"{op} x{c}" for op, c in skipped.most_common()), "      "))
        if analysis.uncalled_modules():
            print(wrap(f"modules whose forward never ran in the trace (0 for them): "
                       f"{len(analysis.uncalled_modules())}, e.g. {sorted(analysis.uncalled_modules())[0]}", "      "))
    print(f"    FlopCounterMode: total {n(sum(fcm.values()))} FLOPs (2 per MAC), under torch.no_grad"
          + ("" if fcm == fcm_grad else f"; {n(sum(fcm_grad.values()))} with autograd on"))
    print(wrap(f"by operator: {ops_line(fcm)}", "      "))
    no_formula = {str(op): c for op, c in fcm_ops.items() if op not in flop_registry}
    print(wrap("aten operators that ran with no formula (counted 0): "
               + ", ".join(f"{op} x{c}" for op, c in sorted(no_formula.items(), key=lambda kv: -kv[1])), "      "))

    # --- the same quantities, in MACs
    cv_attention = sum(row.macs for row in report.layers if row.kind == "MultiheadAttention")
    cv = {"conv": sum(row.macs for row in report.layers if row.kind == "Conv2d"), "matmuls": 0}
    cv["linear"] = report.macs - cv["conv"] - cv_attention
    if blocks and cv_attention == attn["projections"] + attn["matmuls"]:
        cv["linear"] += attn["projections"]
        cv["matmuls"] = attn["matmuls"]
    elif cv_attention:
        cv["matmuls"] = cv_attention  # unexpected: shown as is, flagged below
    rows = {"cvprep": cv}
    if fv is not None:
        rows["fvcore"] = {"conv": pick(fv, FV_CONV), "linear": pick(fv, FV_LINEAR), "matmuls": pick(fv, FV_MATMUL)}
    fcm_rows = {FCM_NO_GRAD: fcm}
    if fcm_grad != fcm:
        fcm_rows[FCM_GRAD] = fcm_grad
    if blocks:
        fcm_rows[FCM_MATH] = run_flop_counter(model, x, grad=True, math_sdpa=True)
    for tool, counts in fcm_rows.items():
        rows[tool] = {"conv": pick(counts, FCM_CONV) / 2, "linear": pick(counts, FCM_LINEAR) / 2,
                      "matmuls": pick(counts, FCM_MATMUL) / 2}
    print("  the same quantities in MACs (fvcore as is, FlopCounterMode / 2)"
          + ("; linear includes the attention projections where counted" if blocks else ""))
    print(f"    {'':<40}{'conv':>15}{'linear':>17}" + (f"{'q.k^T, attn.v':>16}" if blocks else "")
          + f"{'conv+linear':>17}")
    for tool, part in rows.items():
        print(f"    {tool:<40}{n(part['conv']):>15}{n(part['linear']):>17}"
              + (f"{n(part['matmuls']):>16}" if blocks else "") + f"{n(part['conv'] + part['linear']):>17}")
    conv_linear = {t: rows[t]["conv"] + rows[t]["linear"] for t in rows}
    agree = [t for t in rows if conv_linear[t] == conv_linear["cvprep"]]
    differ = [t for t in rows if t not in agree]
    value = conv_linear["cvprep"]
    print(wrap(f"-> conv+linear: {' = '.join(agree)} agree exactly: {n(value)} MACs = {value / 1e9:.3f} G MACs "
               f"= {2 * value / 1e9:.3f} GFLOPs" + ("" if not differ else "; DIFFER from cvprep: " + ", ".join(
                   f"{t} by {n(conv_linear[t] - value)}" for t in differ) + " (explained below)"), "    "))
    if blocks:
        totals = {t: conv_linear[t] + rows[t]["matmuls"] for t in rows}
        print(wrap("-> with the attention matmuls: " + ", ".join(f"{t} {n(v)}" for t, v in totals.items()), "    "))

    print("  why the totals differ")
    if fv is not None:
        fv_extra = fv_total - pick(fv, FV_CONV + FV_LINEAR + FV_MATMUL)
        extra = {op: v for op, v in fv.items() if op not in FV_CONV + FV_LINEAR + FV_MATMUL}
        print(wrap(f"fvcore total - its conv, linear and matmuls = {n(fv_extra)}"
                   + (f" = {' + '.join(f'{op} {n(v)}' for op, v in extra.items())}:" if extra else ""), "    "))
        for op, value in extra.items():
            if op in FV_RULES:
                func, per, _, why = FV_RULES[op]
                expected = per * watch.elements[func]
                check = "matches" if expected == value else f"DOES NOT match {n(value)}"
                calls = watch.calls[func]
                print(wrap(f"{op}: {why}: {per} x {n(watch.elements[func])} elements in {calls} "
                           f"call{'s' if calls > 1 else ''} = {n(expected)}, {check}", "      "))
            else:
                print(wrap(f"{op}: a default fvcore handler (see fvcore/nn/jit_handles.py)", "      "))
        for op, count in skipped.most_common():
            kind = CVPREP_KIND.get(op)
            where = (f"; cvprep lists {kinds[kind]} '{kind}' row{'s' if kinds[kind] > 1 else ''} in other_ops"
                     if kind in kinds else "")
            print(wrap(f"{op} x{count}: no fvcore handler, skipped (0){where}", "      "))
        gap = report.macs - (fv_total - fv_extra)
        print(wrap(f"so cvprep's macs - (fvcore's total - {n(fv_extra)}) = {n(gap)}"
                   + (": conv and linear are counted alike, 1 per MAC" if gap == 0 else
                      f" = the attention matmuls ({n(attn['matmuls'])}): "
                      f"{'yes' if gap == attn['matmuls'] else 'NO'}, see the attention section"), "      "))
    fcm_total = sum(fcm.values())
    same = "equal" if report.flops == fcm_total else f"FlopCounterMode - cvprep = {n(fcm_total - report.flops)}"
    print(wrap(f"FlopCounterMode total {n(fcm_total)} = 2 x {n(fcm_total / 2)} MACs: it has formulas only for "
               "convolution and matrix products (and CUDA attention kernels), so batch norm, activations, pooling "
               f"and additions are 0; cvprep.flops = 2 x macs = {n(report.flops)}: {same}"
               + (" (see the attention section)" if blocks and report.flops != fcm_total else ""), "    "))
    unlisted = [f"F.{func.__name__} x{watch.calls[func] - kinds[kind]}" for func, _, kind, _ in FV_RULES.values()
                if watch.calls[func] > kinds[kind]]
    print(wrap(f"cvprep keeps conv, linear (and attention) in macs ({n(report.macs)}) and lists the other "
               f"{len(report.other_ops)} operations (leaf modules, additions, concatenations) in other_ops without "
               "a cost" + (f"; functional calls that are not modules are not listed: {', '.join(unlisted)}"
                           if unlisted else ""), "    "))
    if blocks:
        full = cv["conv"] + (report.macs - cv["conv"] - cv_attention) + attn["projections"] + attn["matmuls"]
        explain_attention(report, attn, cv_attention, full, rows, fcm_ops, aten_ops(model, x, grad=True))


def explain_attention(report, attn, cv_attention, full, rows, ops_no_grad, ops_grad) -> None:
    """ViT: who counts the attention projections and the q.k^T, attn.v matmuls, and why.

    ``full``: the complete count, conv + Linear modules + attention projections and matmuls.
    """
    proj, mm = attn["projections"], attn["matmuls"]
    batch, length, e, blocks, heads = attn["batch"], attn["tokens"], attn["embed"], attn["blocks"], attn["heads"]
    seen = lambda ops: ", ".join(f"{op} x{c}" for op, c in ops.items()  # noqa: E731
                                 if "attention" in str(op) or "bmm" in str(op))
    print(f"  attention: {blocks} nn.MultiheadAttention blocks, {heads} heads, embed {e}, {length} tokens, "
          f"batch {batch} (MACs)")
    print(wrap(f"projections q, k, v (one packed [3E, E] weight: a Parameter, not a module) and output (out_proj, a "
               f"Linear module whose forward never runs: MultiheadAttention calls F.linear or a fused kernel on its "
               f"weight): {blocks} x {length} x 4 x {e}^2 = {n(proj)}", "    "))
    print(wrap(f"q.k^T and attn.v inside scaled_dot_product_attention, functions not modules: {blocks} x 2 x "
               f"{length}^2 x {e} (= {heads} heads x {length}^2 x {e // heads}, twice) = {n(mm)}; complete count "
               f"with conv and the MLP's Linear modules: {n(full)}", "    "))
    if cv_attention == proj + mm:
        print(wrap(f"cvprep.profile: a forward hook on each MultiheadAttention computes both from the query and key "
                   f"shapes: its MultiheadAttention rows = {n(cv_attention)} = {n(proj)} + {n(mm)}, matches; "
                   f"total {n(report.macs)} = the complete count: {'yes' if report.macs == full else 'NO'}", "    "))
    else:
        print(wrap(f"cvprep.profile: MultiheadAttention rows {n(cv_attention)} (expected {n(proj + mm)}); its hooks "
                   f"only see modules whose forward runs, so it misses {n(full - report.macs)} MACs = "
                   f"{100 * (full - report.macs) / full:.1f}% of the complete count", "    "))
    if "fvcore" in rows:
        fv_conv_linear = rows["fvcore"]["conv"] + rows["fvcore"]["linear"]
        print(wrap(f"fvcore: traces with autograd on, so MultiheadAttention takes its slow path and the projections "
                   f"are aten::linear, counted: conv+linear {n(fv_conv_linear)} = complete - matmuls: "
                   f"{'yes' if fv_conv_linear == full - mm else 'NO'}; aten::scaled_dot_product_attention has no "
                   f"handler: the {n(mm)} matmul MACs count 0", "    "))
    fcm, grad, math_ = rows[FCM_NO_GRAD], rows.get(FCM_GRAD), rows[FCM_MATH]
    total = lambda part: part["conv"] + part["linear"] + part["matmuls"]  # noqa: E731
    print(wrap(f"FlopCounterMode under no_grad (the timed run): MultiheadAttention takes its fused fast path "
               f"({seen(ops_no_grad)}), which has no formula, so the whole attention counts 0, projections "
               f"included: {n(total(fcm))} = complete - projections - matmuls: "
               f"{'yes' if total(fcm) == full - proj - mm else 'NO'}", "    "))
    if grad is not None:
        print(wrap(f"FlopCounterMode with autograd on: slow path, the projections become aten.addmm and count; "
                   f"scaled_dot_product_attention runs {seen(ops_grad)} on the CPU, which has no formula (the CUDA "
                   f"flash/efficient kernels have one): {n(total(grad))} = complete - matmuls: "
                   f"{'yes' if total(grad) == full - mm else 'NO'}", "    "))
    print(wrap(f"FlopCounterMode with autograd on and sdpa_kernel(SDPBackend.MATH): the attention decomposes into "
               f"aten.bmm, which counts: {n(math_['matmuls'])} = the matmuls: "
               f"{'yes' if math_['matmuls'] == mm else 'NO'}; total {n(total(math_))} = the complete count: "
               f"{'yes' if total(math_) == full else 'NO'}", "    "))


def cprofile_cvprep(model: nn.Module, x: torch.Tensor, threads: int) -> None:
    torch.set_num_threads(threads)
    profile(model, tuple(x.shape))  # warm up
    profiler = cProfile.Profile()
    before = resource.getrusage(resource.RUSAGE_SELF)
    profiler.runcall(profile, model, tuple(x.shape))
    after = resource.getrusage(resource.RUSAGE_SELF)
    print(wrap(f"cProfile of one cvprep.profile call, {threads} thread(s), top 15 by own time "
               f"({after.ru_minflt - before.ru_minflt:,} page faults, {1e3 * (after.ru_stime - before.ru_stime):.1f} "
               "ms in the kernel: cProfile books them on the torch functions that first touch the new memory):", "  "))
    stats = pstats.Stats(profiler)
    stats.sort_stats("tottime").print_stats(15)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, nargs="+", default=sorted({1, torch.get_num_threads()}),
                        help="torch thread counts to time with (default: 1 and torch's default)")
    parser.add_argument("--models", nargs="+", default=["resnet50"], choices=[*MODELS, "all"])
    parser.add_argument("--cprofile", action="store_true", help="also cProfile one cvprep.profile call per model")
    args = parser.parse_args()
    models = MODELS if "all" in args.models else args.models

    print(f"torch {torch.__version__}, torchvision {torchvision.__version__}, {os.cpu_count()} cores, "
          f"torch default threads {torch.get_num_threads()}, input {INPUT_SIZE}, "
          f"load average {os.getloadavg()[0]:.2f} (others' processes slow the timings, most with 2+ threads)")
    if FlopCountAnalysis is None:
        print(f"fvcore is NOT installed (it is not a project dependency): its rows are skipped. "
              f"To compare with it: {FVCORE_INSTALL}")
    else:
        from importlib.metadata import version
        print(f"fvcore {version('fvcore')}")
    torch.manual_seed(0)
    x = torch.zeros(INPUT_SIZE)
    for name in models:
        model = getattr(torchvision.models, name)(weights=None).eval()
        print(f"\n== {name} ==")
        timing(model, x, args.repeats, args.threads)
        compare(model, x)
        if args.cprofile:
            cprofile_cvprep(model, x, min(args.threads))
    print(f"\nload average at the end {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
