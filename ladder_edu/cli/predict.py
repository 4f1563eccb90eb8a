"""``ladder-edu predict``: the performance model's tokens/s and speedups on hardware you may not have."""
from __future__ import annotations

import argparse
from dataclasses import asdict, fields

from ..models.config import PRESETS, get_config
from .common import floats, ints, out_file, say, write_json


def what_if(text: str):
    """``FIELD=VALUE``: a numeric field of perfmodel.Hardware and a value >= 0."""
    from ..perf.perfmodel import Hardware
    numeric = [f.name for f in fields(Hardware) if f.type in ("float", "int", float, int)]
    field, sep, value = text.partition("=")
    if not sep or field not in numeric:
        raise argparse.ArgumentTypeError(f"must be FIELD=VALUE with FIELD one of {', '.join(numeric)}, got {text!r}")
    try:
        x = float(value)
    except ValueError:
        x = float("nan")
    if not x >= 0 or x == float("inf"):
        raise argparse.ArgumentTypeError(f"{field}: the value must be a number >= 0, got {value!r}")
    return field, x


what_if.bad_examples = ["flop_eff", "nope=1", "flop_eff=abc", "link_gbps=-3", "name=x"]


def add_parsers(sub):
    from ..perf.perfmodel import HARDWARE
    pred = sub.add_parser("predict", help="the performance model: tokens/s and speedups on hardware you lack",
                          description="Analytic model of TP inference (ladder_edu/perf/perfmodel.py): prefill, decode "
                                      "and tokens/s of each variant on a hardware preset, as the Ladder paper "
                                      "measured them (prompt 1024, 512 new tokens). --validate fits its constants "
                                      "on part of the paper's 70B table and reports the held-out error.")
    pred.add_argument("--model", default="llama-3-70b", choices=sorted(PRESETS), help="model preset (default: "
                      "llama-3-70b)")
    pred.add_argument("--gpu", default="h100-nvlink", choices=sorted(HARDWARE) + ["this-machine"],
                      help="hardware preset, or this-machine (calibrated now by micro-benchmarks on 2 CPU ranks) "
                           "(default: h100-nvlink)")
    pred.add_argument("--tp", type=ints(1), default=8, help="TP degree (default: 8)")
    pred.add_argument("--batch", type=ints(1), default=1, help="batch size (default: 1)")
    pred.add_argument("--prompt", type=ints(1), default=1024, help="prompt tokens (default: 1024)")
    pred.add_argument("--generate", type=ints(1), default=512, help="new tokens (default: 512)")
    pred.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE", type=what_if,
                      help="what-if: override a hardware field, e.g. --set flop_eff=0.5 --set link_gbps=25 "
                           "(fields: see ladder_edu/perf/perfmodel.py Hardware)")
    pred.add_argument("--validate", action="store_true",
                      help="fit the constants on the paper's 70B table (batch 1, 16) and report the error on the "
                           "held-out cells (batch 4, 64)")
    pred.add_argument("--compare", action="store_true",
                      help="with --gpu this-machine: also measure decode (ladder-edu bench) and show it beside the "
                           "prediction")
    pred.add_argument("--json", metavar="FILE", type=out_file, help="also write the results to FILE as JSON")


def cmd_predict(args) -> int:
    from ..perf.calibrate import calibrate_this_machine, fit, validate
    from ..perf.perfmodel import get_hardware, predict
    out = {}
    if args.validate:
        params, _ = fit()
        report = validate(params)
        say(format_validation(report))
        out["validation"] = report
    hw = calibrate_this_machine() if args.gpu == "this-machine" else get_hardware(args.gpu)
    for field, value in args.set:
        hw = hw.with_(**{field: type(getattr(hw, field))(value)}, name=f"{hw.name} (what-if {field}={value:g})")
    cfg = get_config(args.model)
    pred = predict(cfg, hw, args.tp, args.batch, args.prompt, args.generate)
    say(f"model: {cfg.name} on {hw.name} ({hw.note}), TP={args.tp}, batch {args.batch}, prompt {args.prompt}, "
         f"{args.generate} new tokens")
    say(f"  {'variant':12s} {'prefill ms':>11s} {'decode ms':>10s} {'tokens/s':>10s} {'speedup':>8s}")
    for p in pred.values():
        say(f"  {p.variant:12s} {1e3 * p.prefill_s:11.2f} {1e3 * p.decode_s:10.3f} {p.tokens_per_s:10.1f} "
             f"{p.speedup_vs_standard:7.3f}x")
    from ..perf.perfmodel import iso_prefill_time
    iso = iso_prefill_time(cfg, hw, args.tp, args.batch, args.prompt)
    std = pred["standard"].prefill_s
    gain = 1 - iso / std
    say(f"  ISO prefill (standard model, prompt split in 2 balanced chunks): {1e3 * iso:.2f} ms, "
         f"{100 * abs(gain):.1f}% {'less' if gain >= 0 else 'more'} than the standard prefill")
    out.update(hardware=asdict(hw), prediction={v: asdict(p) for v, p in pred.items()},
               iso_prefill_s=iso, iso_prefill_reduction=1 - iso / std)
    if args.compare:
        if args.gpu != "this-machine":
            raise ValueError("--compare measures this machine: use it with --gpu this-machine")
        from ..perf.bench import decode_benchmark
        from ..perf.perfmodel import forward_time
        context, steps = 64, 16
        meas = decode_benchmark(cfg, args.tp, batch=args.batch, context=context, steps=steps, rounds=6)
        say("decode ms per token on this machine, model vs measured (context 64):")
        rows = {}
        for r in meas.rows:
            model_ms = 1e3 * forward_time(r.variant, cfg, hw, args.tp, args.batch, 1, context + steps // 2)
            rows[r.variant] = {"model_ms": model_ms, "measured_ms": r.median_ms}
        for v, r in rows.items():
            say(f"  {v:12s} model {r['model_ms']:7.2f}  measured {r['measured_ms']:7.2f}  speedup model "
                 f"{rows['standard']['model_ms'] / r['model_ms']:.3f}x measured "
                 f"{rows['standard']['measured_ms'] / r['measured_ms']:.3f}x")
        out["compare"] = rows
    write_json(args.json, out)
    return 0


def format_validation(report: dict) -> str:
    """The held-out speedup table of calibrate.validate()."""
    lines = ["Performance model vs the Ladder paper's Llama-3-70B table (speedup over standard, tokens/s)",
             "  fitted on batch 1 and 16; held out: batch 4 and 64", f"  {'interconnect':12s} {'batch':>5s} "
             f"{'TP':>3s} {'variant':12s} {'paper':>6s} {'model':>6s} {'error':>7s}"]
    for r in report["rows"]:
        if r["variant"] != "standard" and r["held_out"]:
            lines.append(f"  {r['interconnect']:12s} {r['batch']:5d} {r['tp']:3d} {r['variant']:12s} "
                         f"{r['paper_speedup']:6.3f} {r['model_speedup']:6.3f} "
                         f"{r['model_speedup'] - r['paper_speedup']:+7.3f}")
    lines.append(f"  held-out speedup mean absolute error: {report['held_out_speedup_mae']:.3f} "
                 f"(fitted cells: {report['fit_speedup_mae']:.3f}); held-out tokens/s mean absolute error: "
                 f"{100 * report['held_out_tokens_mape']:.1f}%")
    return "\n".join(lines)


COMMANDS = {"predict": cmd_predict}
