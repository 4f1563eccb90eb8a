"""What each ``ladder-edu`` sub-command does (the parser lives in ``cli.py``)."""
from __future__ import annotations

import json
import os
from dataclasses import asdict

from . import launch
from .config import ALL_VARIANTS, ARCHS, BENCH_VARIANTS, get_config


def _is_main_rank() -> bool:
    return not launch.under_torchrun() or int(os.environ.get("RANK", "0")) == 0


def _say(*args):
    if _is_main_rank():
        print(*args, flush=True)


def _write_json(path: str | None, data):
    if path and _is_main_rank():
        tmp = path + ".tmp"
        with open(tmp, "w") as f:
            json.dump(data, f, indent=2)
        os.replace(tmp, path)
        print(f"wrote {path}")


def cmd_check(args) -> int:
    from .check import check
    extra = {"kraken_degree": args.tp} if args.arch == "kraken" and args.tp > 1 else {}
    cfg = get_config(args.preset, arch=args.arch, ladder_layers=args.ladder_layers, **extra)
    res = check(cfg, args.tp, seed=args.seed, new_tokens=args.new_tokens, dtype=args.dtype,
                tolerance=args.tolerance, backend=args.backend, timeout_s=args.timeout, compile=args.compile)
    _say(res.summary())
    _write_json(args.json, res.to_dict())
    return 0 if res.passed else 1


def default_tp(cfg) -> int:
    """All ranks there are (see launch.default_world_size), rounded down to a TP degree that shards ``cfg``."""
    n = launch.default_world_size()
    if launch.under_torchrun():
        return n
    return max(t for t in cfg.valid_tp_degrees() if t <= n)


def cmd_tour(args) -> int:
    from .bench import decode_benchmark
    from .check import check
    cfg = get_config(args.preset)
    tp = args.tp or default_tp(cfg)
    backend = args.backend or launch.default_backend(tp)
    _say(f"ladder-edu tour: preset {cfg.name} ({cfg.num_params() / 1e6:.1f}M parameters, {cfg.n_layers} layers, "
         f"dim {cfg.dim}), TP={tp} over {backend}\n\n1) Is TP={tp} the same model as one device? (float32)")
    results, ok = [], True
    variants = [dict(arch=a) for a in ARCHS if a != "kraken"] + [dict(arch="standard", ladder_layers=cfg.n_layers // 2)]
    try:                                       # Kraken needs one sub-layer per rank: kraken_degree = tp
        cfg.replace(arch="kraken", kraken_degree=tp)
        variants.append(dict(arch="kraken", kraken_degree=tp))
    except ValueError:
        pass
    for kw in variants:
        res = check(cfg.replace(**kw), tp, seed=args.seed, backend=backend, timeout_s=args.timeout)
        ok &= res.passed
        results.append(res.to_dict())
        _say("  " + res.summary())
    _say(f"\n2) Decode speed ({args.rounds} interleaved rounds x {args.steps} steps per variant)")
    bench = decode_benchmark(cfg, tp, BENCH_VARIANTS, batch=args.batch, context=args.context, steps=args.steps,
                             rounds=args.rounds, seed=args.seed, backend=backend, timeout_s=args.timeout,
                             comm_priority=args.comm_priority)
    _say("  " + bench.table().replace("\n", "\n  "))
    if backend == "gloo":
        _say("\n  On a CPU, gloo communicates from threads that need the same cores as compute, so TP is slower than "
             "one process and an all-reduce can hide behind compute only where a core is free: this teaches "
             "mechanics and relative effects, not speed-ups. `ladder-edu overlap-probe` measures your machine.")
    _write_json(args.json, {"checks": results, "decode": bench.to_dict()})
    return 0 if ok else 1


def cmd_profile(args) -> int:
    import matplotlib
    matplotlib.use("Agg")
    from .overlap import analyze, load_trace, report_table
    from .timeline import draw_timeline
    from .trace import profile
    variants = [v.strip() for v in args.arch.split(",") if v.strip()]
    cfg = get_config(args.preset)
    traces = profile(cfg, variants, args.tp, args.phase, args.out, steps=args.steps, context=args.context,
                     seed=args.seed, backend=args.backend, comm_priority=args.comm_priority, timeout_s=args.timeout)
    reports = {v: [analyze(load_trace(p), rank=r) for r, p in enumerate(paths)] for v, paths in traces.items()}
    _say(report_table(reports))
    out = {"preset": cfg.name, "tp": args.tp, "phase": args.phase, "steps": args.steps, "variants": {
        v: [dict(rank=r.rank, device=r.device, steps=r.steps, per_step=r.per_step(), layers=r.layers)
            for r in reps] for v, reps in reports.items()}}
    _write_json(os.path.join(args.out, "overlap.json"), out)
    a, b = (int(x) for x in (args.layers or "0-2").split("-"))
    for name, layers in (("timeline.png", None), ("timeline_layers.png", (a, b))):
        fig = draw_timeline(traces, layers=layers)
        fig.savefig(os.path.join(args.out, name), dpi=110)
        _say(f"wrote {os.path.join(args.out, name)}")
    _say(f"open {args.out}/<variant>.merged.trace.json at https://ui.perfetto.dev or chrome://tracing; "
         f"TensorBoard: tensorboard --logdir {args.out}/traces (pip install ladder_edu[tensorboard])")
    _write_json(args.json, out)
    return 0


def cmd_overlap_probe(args) -> int:
    from .probe import format_probe, overlap_probe
    res = overlap_probe(args.ranks or launch.default_world_size(), args.comm_priority, args.backend,
                        iters=args.iters)
    _say(format_probe(res))
    _write_json(args.json, {"comm_priority": res["comm_priority"], "rows": [asdict(r) for r in res["rows"]]})
    return 0




def _ints(text: str, what: str) -> list[int]:
    try:
        return [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise ValueError(f"{what} must be comma-separated integers, got {text!r}") from None


def cmd_bench(args) -> int:
    import csv
    import itertools

    from tqdm import tqdm

    from .bench import decode_benchmark
    cfg = get_config(args.preset)
    default = BENCH_VARIANTS if args.emulate_tp else ALL_VARIANTS
    variants = [v.strip() for v in (args.arch or ",".join(default)).split(",") if v.strip()]
    combos = list(itertools.product(_ints(args.tp, "--tp"), _ints(args.batch, "--batch"),
                                    _ints(args.context, "--context")))
    results = []
    if args.compile and args.emulate_tp:
        raise ValueError("--compile cannot be combined with --emulate-tp: the emulated rank's modeled "
                         "waits (Python threads, CUDA sleeps) are not traceable; drop one of them")
    if args.emulate_tp:
        import torch

        from .emulate import emulated_benchmark
        from .perfmodel import get_hardware
        hw = get_hardware(args.gpu)
        if args.layers:
            cfg = cfg.replace(n_layers=args.layers, ladder_layers=0)
        dtype = args.dtype or ("bfloat16" if torch.cuda.is_available() else "float32")
        _say(f"EMULATED RANK: rank 0's 1/{args.emulate_tp} shard of {cfg.name} ({cfg.n_layers} layers) on one "
             f"device; all-reduce times are MODELED for {hw.name}, not measured")
    for tp, batch, context in tqdm(combos, desc="bench", unit="config", disable=not _is_main_rank()):
        if args.emulate_tp:
            res = emulated_benchmark(cfg, args.emulate_tp, hw, variants, batch, context, args.steps, args.rounds,
                                     dtype=dtype, phase=args.phase)
        else:
            res = decode_benchmark(cfg, tp, variants, batch=batch, context=context, steps=args.steps,
                                   rounds=args.rounds, seed=args.seed, backend=args.backend, timeout_s=args.timeout,
                                   comm_priority=args.comm_priority, phase=args.phase, compile_mode=args.compile)
        results.append(res)
        _say(res.table())
    rows = [dict(phase=r.phase, preset=r.preset, tp=r.tp, backend=r.backend, comm_priority=r.comm_priority,
                 batch=r.batch, context=r.context, tokens_per_s=r.tokens_per_s(v.variant), **asdict(v),
                 compiled=r.compiled)
            for r in results for v in r.rows]
    _write_json(args.json, {"results": [r.to_dict() for r in results], "rows": rows})
    if args.csv and _is_main_rank():
        with open(args.csv, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
        print(f"wrote {args.csv}")
    if args.plot and _is_main_rank():
        import matplotlib
        matplotlib.use("Agg")
        from .diagrams import plot_bench
        plot_bench(results).savefig(args.plot, dpi=110)
        print(f"wrote {args.plot}")
    return 0


def cmd_predict(args) -> int:
    from .calibrate import calibrate_this_machine, fit, validate
    from .perfmodel import get_hardware, predict
    out = {}
    if args.validate:
        params, _ = fit()
        report = validate(params)
        _say(format_validation(report))
        out["validation"] = report
    hw = calibrate_this_machine() if args.gpu == "this-machine" else get_hardware(args.gpu)
    for item in args.set:
        field, _, value = item.partition("=")
        if not hasattr(hw, field) or field in ("name", "note"):
            raise ValueError(f"--set {item!r}: unknown hardware field {field!r}")
        hw = hw.with_(**{field: type(getattr(hw, field))(value)}, name=f"{hw.name} (what-if {item})")
    cfg = get_config(args.model)
    pred = predict(cfg, hw, args.tp, args.batch, args.prompt, args.generate)
    _say(f"model: {cfg.name} on {hw.name} ({hw.note}), TP={args.tp}, batch {args.batch}, prompt {args.prompt}, "
         f"{args.generate} new tokens")
    _say(f"  {'variant':12s} {'prefill ms':>11s} {'decode ms':>10s} {'tokens/s':>10s} {'speedup':>8s}")
    for p in pred.values():
        _say(f"  {p.variant:12s} {1e3 * p.prefill_s:11.2f} {1e3 * p.decode_s:10.3f} {p.tokens_per_s:10.1f} "
             f"{p.speedup_vs_standard:7.3f}x")
    from .perfmodel import iso_prefill_time
    iso = iso_prefill_time(cfg, hw, args.tp, args.batch, args.prompt)
    std = pred["standard"].prefill_s
    gain = 1 - iso / std
    _say(f"  ISO prefill (standard model, prompt split in 2 balanced chunks): {1e3 * iso:.2f} ms, "
         f"{100 * abs(gain):.1f}% {'less' if gain >= 0 else 'more'} than the standard prefill")
    out.update(hardware=asdict(hw), prediction={v: asdict(p) for v, p in pred.items()},
               iso_prefill_s=iso, iso_prefill_reduction=1 - iso / std)
    if args.compare:
        if args.gpu != "this-machine":
            raise ValueError("--compare measures this machine: use it with --gpu this-machine")
        from .bench import decode_benchmark
        from .perfmodel import forward_time
        context, steps = 64, 16
        meas = decode_benchmark(cfg, args.tp, batch=args.batch, context=context, steps=steps, rounds=6)
        _say("decode ms per token on this machine, model vs measured (context 64):")
        rows = {}
        for r in meas.rows:
            model_ms = 1e3 * forward_time(r.variant, cfg, hw, args.tp, args.batch, 1, context + steps // 2)
            rows[r.variant] = {"model_ms": model_ms, "measured_ms": r.median_ms}
        for v, r in rows.items():
            _say(f"  {v:12s} model {r['model_ms']:7.2f}  measured {r['measured_ms']:7.2f}  speedup model "
                 f"{rows['standard']['model_ms'] / r['model_ms']:.3f}x measured "
                 f"{rows['standard']['measured_ms'] / r['measured_ms']:.3f}x")
        out["compare"] = rows
    _write_json(args.json, out)
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


def cmd_finetune(args) -> int:
    from .recovery import RUNS, run_recovery, table
    runs = [r.strip() for r in args.runs.split(",") if r.strip()]
    bad = [r for r in runs if r not in RUNS]
    if bad:
        raise ValueError(f"unknown run(s) {bad}; valid choices: {', '.join(RUNS)}")
    result = run_recovery(args.out, args.ladder_layers, args.steps, runs, args.source, args.eval_blocks,
                          args.probe_limit, chat_tokens=args.chat_tokens, lr=args.lr,
                          chat_fraction=args.chat_fraction, hidden_weight=args.hidden_weight,
                          freeze_below=args.freeze_below)
    _say(table(result))
    _write_json(args.json, result)
    return 0


def cmd_from_scratch(args) -> int:
    from .from_scratch import compare, table
    result = compare(args.out, args.steps, _ints(args.seeds, "--seeds"),
                     [a.strip() for a in args.archs.split(",") if a.strip()])
    _say(table(result))
    _write_json(args.json, result)
    return 0
