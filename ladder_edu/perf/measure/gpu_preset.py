"""Measure this GPU for the performance model and write a hardware preset (``ladder-edu calibrate-gpu``).

The model prices a projection as ``kernel_us + bytes / (HBM peak * mem_eff)`` in decode and ``kernel_us + flops /
(tensor peak * flop_eff)`` in prefill (``perfmodel._kernels``). ``calibrate_gpu`` times every projection shape of
the 8B and 70B models at TP 1-8 (``gpu_terms.projection_sweep``: CUDA graphs, weights cycled past L2) and fits
those lines to the times, shape by shape, by least squares on relative error (``fit_projections``):

* ``kernel_us`` and ``mem_eff``: intercept and slope of time against bytes for one token (GEMV);
* ``skinny_eff``: the slope for 4-64 tokens (skinny GEMMs), with the same intercept;
* ``flop_eff``: the slope of time against FLOPs for 1024-token GEMMs (prefill), with the same intercept.

The fixed part is a kernel's launch slot in a CUDA graph, ramp-up and tail. Every other kernel (norms, rotary,
SiLU, cache writes, attention, sampling) is charged ``small_us`` (``small_kernel_cost``: the median non-matmul
kernel of a profiled compiled decode step of a 70B shard, plus the gap between the step's kernels).
The links and communication constants come from ``--base``. ``--detail DIR`` also writes the raw rows and
compiled 70B-shard decode steps (``calibrate_detail``), each file naming the device, torch version and command.
"""
from __future__ import annotations

import os
from dataclasses import replace

from ...models.registry import CEILING
from .timing import default_device, per_layer_slope, relative_line
from ..model.hardware import BOUNDS, HARDWARE, MEASURED, Hardware, get_hardware


def fit_projections(rows: list[dict], mem_gbps: float, tflops: float) -> dict:
    """The four compute constants from ``projection_sweep`` rows (each distinct shape once), with each line's
    mean relative error: {kernel_us, mem_eff, skinny_eff, flop_eff, *_err, shapes}."""
    uniq = {(r["out"], r["in"], r["tokens"]): r for r in rows}.values()

    def nbytes(r):
        return 2 * (r["out"] * r["in"] + r["tokens"] * (r["in"] + r["out"]))

    gemv = [r for r in uniq if r["tokens"] == 1]
    skinny = [r for r in uniq if 1 < r["tokens"] <= 64]
    big = [r for r in uniq if r["tokens"] >= 512]
    a, b, err = relative_line([nbytes(r) / 1e3 for r in gemv], [r["us"] for r in gemv])       # us per kB
    _, bs, err_s = relative_line([nbytes(r) / 1e3 for r in skinny], [r["us"] for r in skinny], a)
    _, bf, err_f = relative_line([2 * r["out"] * r["in"] * r["tokens"] / 1e6 for r in big], [r["us"] for r in big], a)
    return {"kernel_us": a, "mem_eff": 1 / (b * mem_gbps), "skinny_eff": 1 / (bs * mem_gbps),
            "flop_eff": 1 / (bf * tflops), "mem_err": err, "skinny_err": err_s, "flop_err": err_f,
            "shapes": {"gemv": len(gemv), "skinny": len(skinny), "gemm": len(big)}}


GEMM_KERNELS = ("nvjet", "gemm", "splitkreduce", "cutlass", "xmma")


def small_kernel_cost(step: dict) -> float:
    """``small_us`` from a profiled compiled step (a ``compiled_steps`` row with ``kernels``): the median duration
    of its kernels that are not matmuls (cuBLAS/CUTLASS names), plus the mean gap between the step's kernels
    (back-to-back step time minus busy time, per kernel)."""
    import statistics
    durations, calls, busy = [], 0.0, 0.0
    for k in step["kernels"]:
        calls, busy = calls + k["calls"], busy + k["us"]
        if not any(g in k["name"].lower() for g in GEMM_KERNELS):
            durations += [k["us"] / k["calls"]] * max(1, round(k["calls"]))
    return statistics.median(durations) + max(0.0, step["pipelined_us"] - busy) / calls


def measure(base: Hardware) -> dict:
    """The projection sweep (8B and 70B shapes, TP 1-8, 1/16/1024 tokens), its fit, and the small kernels of a
    profiled compiled step, on the current CUDA GPU."""
    from . import gpu_terms
    rows = gpu_terms.projection_sweep(tokens=(1, 16, 1024), device="cuda")
    step = gpu_terms.compiled_steps("llama-3-70b", [(8, 1, 2)], device="cuda", profile=[(8, 1, 2)])[0]
    if "kernels" not in step:
        raise ValueError(f"could not profile a compiled 2-layer 70B shard at TP 8 on this GPU: "
                         f"{step.get('error') or step.get('kernels_error')}")
    return {**fit_projections(rows, base.mem_gbps, base.tflops), "small_us": small_kernel_cost(step),
            "tiny_kernel_us": gpu_terms.small_kernel_us("cuda"), "device": gpu_terms.device_name("cuda")}


DATA_SHEETS = {"H200": "h200-nvlink", "H100": "h100-nvlink", "A100": "a100-nvswitch", "A800": "a800-nvlink",
               "4090": "rtx4090-pcie"}
"""The preset whose data-sheet peaks ``calibrate-gpu`` measures against, by a word of the device's name."""


def base_for(device: str, base: str | None) -> str:
    """``base``, or the preset matching the device's name; a preset for another GPU is refused (its peaks would
    make the measured efficiencies meaningless)."""
    match = next((preset for word, preset in DATA_SHEETS.items() if word in device), None)
    if base is None and match is None:
        raise ValueError(f"no data sheet for {device!r}; pass --base with the preset closest to it (valid: "
                         f"{', '.join(HARDWARE)}) or add one to hardware.HARDWARE")
    if base in HARDWARE and match is not None and base.split("-")[0] != match.split("-")[0]:
        raise ValueError(f"--base {base} is another GPU's data sheet, but this is an {device}: use --base {match} "
                         f"(or leave --base out)")
    return base or match


def check_measured(m: dict) -> None:
    """Every measured constant must land inside its physical range (``hardware.BOUNDS``)."""
    for name in MEASURED:
        lo, hi = BOUNDS[name]
        if not lo <= m[name] <= hi:
            raise ValueError(f"measured {name} = {m[name]:.3g} is outside its physical range [{lo}, {hi}]: the "
                             f"--base preset's peaks do not describe this GPU, or the measurement was disturbed "
                             f"(another job on the GPU?); nothing was written")


def measured_eff(eff, m: dict):
    """``eff`` with the constants measured kernel by kernel (``m``: ``MEASURED``): one fixed cost per matmul, a GEMV's
    and a skinny GEMM's alike (a single-kernel timing cannot tell them apart)."""
    return replace(eff, **{k: round(m[k], 4) for k in MEASURED}, skinny_us=round(m["kernel_us"], 4))


def calibrate_gpu(base: str | None = None) -> Hardware:
    """The data-sheet preset of this GPU (or ``base``) with this GPU's measured compute constants."""
    import torch
    if not torch.cuda.is_available():
        raise ValueError("calibrate-gpu needs a CUDA GPU (torch.cuda.is_available() is False); on this machine "
                         "use `ladder-edu predict --gpu this-machine`, or a preset")
    base = base_for(torch.cuda.get_device_name(), base)
    hw = get_hardware(base)
    m = measure(hw)
    check_measured(m)
    eff = measured_eff(hw.eff, m)
    return replace(hw, name=f"{base} calibrated on {m['device']}", eff=eff,
                   note=f"measured by ladder-edu calibrate-gpu on {m['device']}: projections of the 8B and 70B "
                        f"shapes at TP 1-8 fitted as {m['kernel_us']:.2f} us + bytes / {m['mem_eff']:.3f} of peak "
                        f"(GEMV, error {100 * m['mem_err']:.0f}%), {m['skinny_eff']:.3f} (16 tokens), FLOPs / "
                        f"{m['flop_eff']:.3f} of peak (1024 tokens); other kernels of a compiled 70B-shard step "
                        f"{m['small_us']:.2f} us; a tiny kernel in a CUDA graph {m['tiny_kernel_us']:.2f} us; "
                        f"links from {base}")


_PAIRS = [(8, 1), (4, 1), (2, 1), (8, 16), (4, 16), (2, 16), (8, 4), (8, 64)]
STEP_CONFIGS = [(tp, b, n) for tp, b in _PAIRS for n in (2, 6)] + [(8, 1, 2)]
PROFILED = [(8, 1, 2), (8, 16, 2)]
"""(TP, batch, layers) of the compiled 70B-shard steps, most telling first (two layer counts split per-layer time
from the rest of the step; the first is repeated last to show drift); the list is cut where ``budget_s`` runs
out. ``PROFILED``: these also record their decode step's kernels (torch.profiler)."""


def calibrate_detail(out_dir: str, budget_s: float = 300.0, command: str = "", gpt_fast: str | None = None) -> dict:
    """Write ``projections.json`` and ``steps.json`` (``gpu_terms``) into ``out_dir``; returns both. With
    ``gpt_fast`` (a gpt-fast snapshot directory) each compiled step of this package is followed by gpt-fast's on
    the same shape (``gptfast.py``), written to ``gptfast-steps.json``, and ``compare.json`` holds both per layer;
    the projection sweep then gets a third of the budget, and every file is rewritten after each step, so a run
    stopped from outside keeps what it measured."""
    import time

    import torch

    from . import gpu_terms
    os.makedirs(out_dir, exist_ok=True)
    device = default_device()
    head = {"device": gpu_terms.device_name(device), "torch": torch.__version__, "command": command}
    start = time.time()
    deadline = start + budget_s
    proj = {**head, "kernel_us": gpu_terms.small_kernel_us(device),
            "rows": gpu_terms.projection_sweep(device=device, deadline=start + budget_s / (3 if gpt_fast else 1))}
    gpu_terms.write_json(os.path.join(out_dir, "projections.json"), proj)
    path = os.path.join(out_dir, "steps.json")
    if gpt_fast is None:
        steps = gpu_terms.compiled_steps("llama-3-70b", STEP_CONFIGS, device=device, deadline=deadline,
                                  on_row=lambda rows: gpu_terms.write_json(path, {**head, "rows": rows}), profile=PROFILED)
        return {"projections": proj, "steps": {**head, "rows": steps}}
    from . import gptfast
    gptfast.load_model_module(gpt_fast)                  # a wrong directory fails now, not after the sweep
    steps, theirs = [], []
    for config in STEP_CONFIGS[:-1]:                     # alternate: both codes see the same GPU state
        if time.time() > deadline:
            break
        steps += gpu_terms.compiled_steps("llama-3-70b", [config], device=device, profile=PROFILED)
        gpu_terms.write_json(path, {**head, "rows": steps})
        theirs += gptfast.gpt_fast_steps(gpt_fast, "llama-3-70b", [config], device=device)
        gpu_terms.write_json(os.path.join(out_dir, "gptfast-steps.json"), {**head, "rows": theirs})
        compare = gptfast.compare(steps, theirs)
        gpu_terms.write_json(os.path.join(out_dir, "compare.json"), {**head, "rows": compare})
    compare = gptfast.compare(steps, theirs)
    return {"projections": proj, "steps": {**head, "rows": steps}, "gptfast": {**head, "rows": theirs},
            "compare": compare}


def load_measurements(folder: str) -> dict:
    """{"projections": ..., "steps": ...}: the files ``calibrate-gpu --detail`` wrote into ``folder`` (the
    repository's ``docs/gpu/h100`` holds the H100 measurements the presets cite)."""
    import json
    out = {}
    for name in ("projections", "steps"):
        path = os.path.join(folder, f"{name}.json")
        try:
            with open(path) as f:
                out[name] = json.load(f)
        except OSError as e:
            raise ValueError(f"no GPU measurements at {path} ({e.strerror}); write them on a GPU with "
                             f"`ladder-edu calibrate-gpu --out FILE --detail {folder}`") from None
    return out


def compiled_step_comparison(steps: list[dict], hw: Hardware, preset: str = "llama-3-70b") -> list[dict]:
    """For each (TP, batch) timed with two layer counts: the measured per-layer time of the compiled decode step
    (difference of the two, back to back) and the rest of the step (LM head, embedding), next to the model's
    upper-bound layer and LM head for gpt-fast's kernels."""
    from ...models.config import get_config
    from ..model.deployment import Deployment
    from ..model.perfmodel import head_cost, layer_modules
    cfg, out = get_config(preset), []
    by = {(r["tp"], r["batch"], r["layers"]): r for r in steps if "pipelined_us" in r}
    layers: dict[tuple[int, int], list[int]] = {}
    for tp, b, n in by:
        layers.setdefault((tp, b), []).append(n)
    for (tp, b), ns in layers.items():
        lo, hi = min(ns), max(ns)
        if lo == hi:
            continue
        r = by[tp, b, lo]
        per, rest = per_layer_slope(lo, r["pipelined_us"], hi, by[tp, b, hi]["pipelined_us"])
        dep = Deployment(cfg, hw, tp, b)
        model = 1e6 * sum(m.compute for _, m in layer_modules(CEILING, dep, 1, r["cache"]))
        out.append({"tp": tp, "batch": b, "layer_us": per, "model_layer_us": model, "rest_us": rest,
                    "model_head_us": 1e6 * head_cost(dep, 1)})
    return out


def single_kernel_preset(measurements: dict, base: Hardware) -> Hardware:
    """``base`` with the compute constants ``measurements`` (``load_measurements``) give kernel by kernel, as
    ``calibrate-gpu`` fits them: one fixed cost per matmul, every repeated K/V read from HBM (this package's
    compiled step copies the K/V heads per query head). The presets take most of these from the authors' logs
    instead (``hardware.FROM_LOGS``); this is the model of single kernels on that GPU."""
    m = fit_projections(measurements["projections"]["rows"], base.mem_gbps, base.tflops)
    m["small_us"] = small_kernel_cost(next(r for r in measurements["steps"]["rows"] if "kernels" in r))
    return replace(base, eff=replace(measured_eff(base.eff, m), kv_repeat=1.0),
                   name=f"{base.name}, single kernels measured on {measurements['projections'].get('device', 'a GPU')}")
