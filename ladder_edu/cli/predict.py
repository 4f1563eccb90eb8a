"""``ladder-edu predict`` (the performance model on hardware you may not have) and ``calibrate-gpu``."""
from __future__ import annotations

import argparse
import os
from dataclasses import asdict

from ..models.config import PRESETS, get_config
from ..models.registry import BASELINE
from ..perf.model.deployment import Deployment
from ..perf.model.hardware import HARDWARE
from .common import add_plan, floats, in_dir, ints, ladder_layers, out_dir, out_file, say, show_plan, write_json


def what_if(text: str):
    """``FIELD=VALUE``: a numeric field of the hardware (data sheet or efficiency) and a value >= 0."""
    from ..perf.model.hardware import WHAT_IF_FIELDS
    field, sep, value = text.partition("=")
    if not sep or field not in WHAT_IF_FIELDS:
        raise argparse.ArgumentTypeError(f"must be FIELD=VALUE with FIELD one of {', '.join(WHAT_IF_FIELDS)}, "
                                         f"got {text!r}")
    try:
        x = float(value)
    except ValueError:
        x = float("nan")
    if not x >= 0 or x == float("inf"):
        raise argparse.ArgumentTypeError(f"{field}: the value must be a number >= 0, got {value!r}")
    return field, x


def gpu(text: str) -> str:
    """A hardware preset, 'this-machine', or a hardware JSON file that exists."""
    if text in HARDWARE or text == "this-machine" or (text.endswith(".json") and os.path.isfile(text)):
        return text
    raise argparse.ArgumentTypeError(f"unknown hardware {text!r}; valid choices: {', '.join(HARDWARE)}, "
                                     f"this-machine, or a .json file written by `ladder-edu calibrate-gpu`")


def add_parsers(sub):
    pred = sub.add_parser("predict", help="the performance model: tokens/s and speedups on hardware you lack",
                          description="Analytic model of TP inference (ladder_edu/perf/model/perfmodel.py), built from the "
                                      "kernels a forward pass launches and NCCL's own all-reduce model: prefill, "
                                      "decode and tokens/s of each variant as the Ladder paper measured them "
                                      "(prompt 1024, 512 new tokens). --validate refits its efficiencies on the "
                                      "paper's 70B table and cross-validates them.")
    pred.add_argument("--model", default="llama-3-70b", choices=sorted(PRESETS),
                      help="model preset (default: llama-3-70b)")
    pred.add_argument("--gpu", default="h100-nvlink", type=gpu,
                      help=f"hardware preset ({', '.join(HARDWARE)}), "
                           "this-machine (calibrated now on 2 CPU ranks), or a .json file from `ladder-edu "
                           "calibrate-gpu` (default: h100-nvlink)")
    pred.add_argument("--tp", type=ints(1), default=8, help="TP degree (default: 8)")
    pred.add_argument("--nodes", type=ints(1), default=1,
                      help="nodes the TP group spans (TP/nodes GPUs each, joined by the preset's network; default 1)")
    pred.add_argument("--batch", type=ints(1), default=1, help="batch size (default: 1)")
    pred.add_argument("--prompt", type=ints(1), default=1024, help="prompt tokens (default: 1024)")
    pred.add_argument("--generate", type=ints(1), default=512, help="new tokens (default: 512)")
    pred.add_argument("--ladder-layers", type=ladder_layers(), default=None, metavar="K|I,J,..",
                      help="hybrid ladder: only the top K layers, or the layers I,J,.. (one layer: I,), are ladder "
                           "(default: all)")
    pred.add_argument("--allreduce", default="nccl", choices=("nccl", "one-shot", "two-shot", "nvls"),
                      help="the all-reduce implementation: NCCL as its tuner picks (default), or an intra-node "
                           "one-shot, two-shot or NVLS multimem kernel (perf/model/allreduce.py, sourced latencies)")
    pred.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE", type=what_if,
                      help="what-if: override a hardware field, e.g. --set link_gbps=25 --set kernel_us=5")
    pred.add_argument("--explain", nargs="?", const="-", default=None, metavar="PNG", type=out_file,
                      help="per decode step: time in each kernel class, exposed and hidden communication, for each "
                           "variant (a table; with PNG also a stacked-bar plot)")
    pred.add_argument("--sweep", nargs="?", const="-", default=None, metavar="PNG", type=out_file,
                      help="ladder's speedup over model size x TP x interconnect at --batch (a table; with PNG "
                           "also a heat map)")
    pred.add_argument("--validate", action="store_true",
                      help="refit the efficiencies on the paper's 70B table and cross-validate (leave one batch "
                           "size out, leave one TP degree out; about a minute)")
    pred.add_argument("--compare", action="store_true",
                      help="with --gpu this-machine: also measure decode (ladder-edu bench) beside the prediction")
    pred.add_argument("--json", metavar="FILE", type=out_file, help="also write the results to FILE as JSON")

    cal = sub.add_parser("calibrate-gpu", help="measure this GPU's kernels and write a hardware preset file",
                         description="Measure this GPU's GEMV bandwidth, skinny and large GEMM efficiency and the "
                                     "time of a small kernel inside a CUDA graph, and write a hardware JSON that "
                                     "`ladder-edu predict --gpu FILE` reads (needs a CUDA GPU).")
    cal.add_argument("--out", required=True, metavar="FILE", type=out_file, help="the hardware JSON to write")
    cal.add_argument("--base", default=None, type=gpu,
                     help="preset whose data-sheet peaks the measurement is relative to and whose links and "
                          "communication constants the file keeps (default: the preset of this GPU, by its name)")
    cal.add_argument("--detail", metavar="DIR", default=None, type=out_dir,
                     help="also measure every projection shape of the 8B and 70B models at TP 1-8 and compiled "
                          "70B-shard decode steps, written as DIR/projections.json and DIR/steps.json")
    cal.add_argument("--gpt-fast", metavar="DIR", default=None, type=in_dir,
                     help="with --detail: also time gpt-fast's own compiled step on each shape (its model.py from "
                          "the snapshot in DIR, never committed here), alternating with this package's; writes "
                          "DIR/gptfast-steps.json and compare.json (per layer, both codes)")
    cal.add_argument("--budget", type=floats(0, lo_open=True), default=300.0, metavar="S",
                     help="with --detail: stop starting new measurements after S seconds (default: 300)")
    add_plan(cal)


def cmd_predict(args) -> int:
    from ..perf.model.hardware import get_hardware
    from ..perf.model.perfmodel import iso_prefill_time, predict
    out = {}
    if args.validate:
        out["validation"] = run_validation()
    if args.gpu == "this-machine":
        from ..perf.measure.cpu_preset import calibrate_this_machine
        hw = calibrate_this_machine()
    else:
        hw = get_hardware(args.gpu)
    for field, value in args.set:
        hw = hw.with_(**{field: value}, name=f"{hw.name} (what-if {field}={value:g})")
    cfg = get_config(args.model)
    pred = predict(cfg, hw, args.tp, args.batch, args.prompt, args.generate, nodes=args.nodes,
                   ladder_layers=args.ladder_layers, allreduce=args.allreduce)
    k = args.ladder_layers
    hybrid = "" if k is None else (f", ladder = layers {','.join(map(str, k))} of {cfg.n_layers}" if isinstance(
        k, tuple) else f", ladder = top {k} of {cfg.n_layers} layers")
    say(f"model: {cfg.name} on {hw.name} ({hw.note}), TP={args.tp} on {args.nodes} node(s), batch {args.batch}, "
        f"prompt {args.prompt}, {args.generate} new tokens{hybrid}; all-reduce: {args.allreduce}")
    say(f"  {'variant':12s} {'prefill ms':>11s} {'decode ms':>10s} {'tokens/s':>10s} {'speedup':>8s}")
    for p in pred.values():
        say(f"  {p.variant:12s} {1e3 * p.prefill_s:11.2f} {1e3 * p.decode_s:10.3f} {p.tokens_per_s:10.1f} "
            f"{p.speedup_vs_standard:7.3f}x")
    if hw.intra.kind == "nvlink" and args.nodes == 1 and not args.set:
        from ..perf.model.logfit import FOLD_CONSTANTS, speedup_interval
        lo, hi = speedup_interval(cfg, hw, args.tp, args.batch, prompt=args.prompt, generate=args.generate,
                                  ladder_layers=args.ladder_layers, allreduce=args.allreduce)
        say(f"  ladder's speed-up moves within {lo:.3f}-{hi:.3f}x over the {len(FOLD_CONSTANTS)} cross-validation "
            f"folds of the constants calibrated on the authors' logs (predict --validate)")
    iso = iso_prefill_time(Deployment(cfg, hw, args.tp, args.batch, args.nodes, allreduce=args.allreduce), args.prompt)
    gain = 1 - iso / pred[BASELINE].prefill_s
    say(f"  ISO prefill (standard model, prompt split in 2 balanced chunks): {1e3 * iso:.2f} ms, "
        f"{100 * abs(gain):.1f}% {'less' if gain >= 0 else 'more'} than the standard prefill")
    out.update(hardware=asdict(hw), prediction={v: asdict(p) for v, p in pred.items()},
               iso_prefill_s=iso, iso_prefill_reduction=gain)
    if args.explain:
        out["explain"] = explain(cfg, hw, args)
    if args.sweep:
        out["sweep"] = run_sweep(args)
    if args.compare:
        out["compare"] = compare(cfg, hw, args)
    write_json(args.json, out)
    return 0


def run_validation() -> dict:
    from ..perf.model.fit import cross_validate, fit, validate
    eff, _ = fit()
    report = validate(eff)
    cv = cross_validate()
    say("Performance model vs the Ladder paper's Llama-3-70B table (speedup over standard, tokens/s)")
    say("  fitted on the whole table: " + ", ".join(f"{k} {v:.3g}" for k, v in report["params"].items()))
    say(f"  in-sample speedup MAE {report['speedup_mae']:.3f} (" + ", ".join(
        f"{v} {e:.3f}" for v, e in report["by_variant"].items()) + f"); tokens/s error {100 * report['tokens_mape']:.1f}%")
    for kind in ("batch", "tp"):
        say(f"  leave one {kind} out: held-out speedup MAE {cv[f'leave_one_{kind}_out_mae']:.3f} (" + ", ".join(
            f"{v} {e:.3f}" for v, e in cv[f"leave_one_{kind}_out_by_variant"].items()) + ")")
    say("  constants over the 7 folds (mean +- spread): " + ", ".join(
        f"{k} {v['mean']:.3g}+-{v['spread']:.2g}" for k, v in cv["params"].items()))
    from ..perf.model import logfit
    log_cv = logfit.cross_validate()
    say(logfit.report(cv=log_cv))
    return {"fit": report, "cross_validation": {k: v for k, v in cv.items() if k != "folds"},
            "folds": [{k: f[k] for k in ("left_out", "speedup_mae", "params")} for f in cv["folds"]],
            "logs": logfit.validate(), "logs_cross_validation": log_cv}


def explain(cfg, hw, args) -> dict:
    from ..perf.model.explain import ablation, ablation_table, breakdown, breakdown_table
    parts = breakdown(cfg, hw, args.tp, args.batch, args.prompt, args.generate, args.nodes,
                      ladder_layers=args.ladder_layers)
    say(breakdown_table(parts))
    terms = ablation(cfg, hw, args.tp, args.batch) if args.nodes == 1 else []
    if terms:
        say(ablation_table(terms))
    if args.explain != "-":
        from ..teach.perfplots import plot_breakdown
        _save(lambda: plot_breakdown(parts, f"{cfg.name}, TP={args.tp}, batch {args.batch}, {hw.name}"), args.explain)
    return parts


def run_sweep(args) -> dict:
    from ..perf.model.explain import sweep, sweep_table
    grid = sweep(args.batch, prompt=args.prompt, generate=args.generate)
    say(sweep_table(grid, batch=args.batch))
    if args.sweep != "-":
        from ..teach.perfplots import plot_sweep
        _save(lambda: plot_sweep(grid, args.batch), args.sweep)
    return {f"{h}|{m}|{tp}": s for (h, m, tp), s in grid.items()}


def _save(make_figure, path: str):
    import matplotlib
    matplotlib.use("Agg")
    make_figure().savefig(path, dpi=110)
    say(f"wrote {path}")


def compare(cfg, hw, args) -> dict:
    if args.gpu != "this-machine":
        raise ValueError("--compare measures this machine: use it with --gpu this-machine")
    from ..perf.measure.bench import decode_benchmark
    from ..perf.model.perfmodel import forward_time
    context, steps = 64, 16
    meas = decode_benchmark(cfg, args.tp, batch=args.batch, context=context, steps=steps, rounds=6)
    say("decode ms per token on this machine, model vs measured (context 64):")
    rows = {}
    for r in meas.rows:
        model_ms = 1e3 * forward_time(r.variant, Deployment(cfg, hw, args.tp, args.batch), 1, context + steps // 2)
        rows[r.variant] = {"model_ms": model_ms, "measured_ms": r.median_ms}
    for v, r in rows.items():
        say(f"  {v:12s} model {r['model_ms']:7.2f}  measured {r['measured_ms']:7.2f}  speedup model "
            f"{rows['standard']['model_ms'] / r['model_ms']:.3f}x measured "
            f"{rows['standard']['measured_ms'] / r['measured_ms']:.3f}x")
    return rows


def cmd_calibrate_gpu(args) -> int:
    """With ``--detail`` the detailed timings come first (the longer, more telling measurement, saved as it goes),
    then the preset file."""
    import torch

    from ..perf.measure.gpu_preset import calibrate_gpu
    if args.plan:
        gpu_name = torch.cuda.get_device_name() if torch.cuda.is_available() else "none here: a run ends with an error"
        return show_plan("calibrate-gpu", [f"{k} = {getattr(args, k)!r}" for k in
                                           ("out", "base", "detail", "gpt_fast", "budget")] +
                         [f"CUDA device: {gpu_name}"])
    if args.detail:
        from ..perf.measure.gpu_preset import calibrate_detail
        if not torch.cuda.is_available():
            calibrate_gpu(args.base)                     # its one-line error: this needs a CUDA GPU
        base = f" --base {args.base}" if args.base else ""
        gf = f" --gpt-fast {args.gpt_fast}" if args.gpt_fast else ""
        cmd = (f"ladder-edu calibrate-gpu --out {args.out}{base} --detail {args.detail} --budget {args.budget:g}"
               f"{gf}")
        res = calibrate_detail(args.detail, args.budget, cmd, args.gpt_fast)
        say(f"wrote {args.detail}/projections.json ({len(res['projections']['rows'])} rows) and steps.json "
            f"({len(res['steps']['rows'])} compiled steps)")
        for r in res.get("compare", []):
            say(f"  70B shard TP {r['tp']}, batch {r['batch']}: per layer {r['ours_us']:.1f} us (ladder_edu) vs "
                f"{r['gpt_fast_us']:.1f} us (gpt-fast), ratio {r['ratio']:.3f}")
    hw = calibrate_gpu(args.base)
    hw.to_json(args.out)
    say(f"wrote {args.out}: " + ", ".join(f"{k} {v:.3g}" for k, v in asdict(hw.eff).items()))
    return 0


COMMANDS = {"predict": cmd_predict, "calibrate-gpu": cmd_calibrate_gpu}
