"""``ladder-edu``: the command line. ``python -m ladder_edu`` runs the same thing.

Every sub-command runs real ranks: it spawns them itself (gloo on a CPU, NCCL with one GPU per rank), or, under
``torchrun``, runs as the rank torchrun started (``torchrun --nproc_per_node=8 -m ladder_edu check --tp 8``).
"""
from __future__ import annotations

import argparse
import json
import os
import sys

from . import launch
from .config import ARCHS, BENCH_VARIANTS, PRESETS, get_config

EPILOG = """examples:
  ladder-edu tour                                   # the 1-minute tour on 2 CPU ranks
  ladder-edu check --arch ladder --tp 2             # TP=2 equals one device?
  ladder-edu check --ladder-layers 2 --tp 4         # hybrid: only the last 2 layers are ladder
  torchrun --standalone --nproc_per_node=8 -m ladder_edu check --arch ladder --tp 8 --preset small
"""


def _common(p: argparse.ArgumentParser, preset: str):
    p.add_argument("--preset", default=preset, choices=sorted(PRESETS),
                   help=f"model shape (default: {preset}); 'tiny' and 'small' are CPU-sized, the others are the "
                        "papers' shapes and need real memory")
    p.add_argument("--backend", choices=launch.BACKENDS, default=None,
                   help="process-group backend (default: nccl if there is one GPU per rank, else gloo)")
    p.add_argument("--timeout", type=float, default=60.0,
                   help="seconds a collective may wait before the job fails with a timeout error (default: 60)")
    p.add_argument("--seed", type=int, default=0, help="seed of the random weights and prompt (default: 0)")
    p.add_argument("--json", metavar="FILE", help="also write the results to FILE as JSON")


def _priority(p: argparse.ArgumentParser):
    p.add_argument("--comm-priority", choices=launch.COMM_PRIORITIES, default="auto",
                   help="CPU only: run gloo's communication threads in a real-time scheduling class so they can "
                        "preempt compute ('realtime', needs root or CAP_SYS_NICE), leave them alone ('normal'), or "
                        "realtime where allowed ('auto', default)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ladder-edu", formatter_class=argparse.RawDescriptionHelpFormatter, epilog=EPILOG,
        description="Tensor-parallel transformers that overlap communication with computation: standard, "
                    "parallel-block and ladder residual, on real torch.distributed process groups.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    tour = sub.add_parser("tour", help="check TP == one device for every architecture, then time decode",
                          description="The main job: build a small model, check that TP equals one device for "
                                      "standard, parallel and ladder (and hybrid ladder), then time decode for the "
                                      "three plus upper_bound and print latency, speedup and communication share.")
    _common(tour, "small")
    tour.add_argument("--tp", type=int, default=None,
                      help="number of ranks (default: the number of GPUs if there are several, else 2 CPU ranks)")
    tour.add_argument("--rounds", type=int, default=8,
                      help="interleaved timing rounds per variant (default: 8; more = tighter medians)")
    tour.add_argument("--steps", type=int, default=16, help="decode steps timed per round (default: 16)")
    tour.add_argument("--context", type=int, default=64, help="prompt length in the KV cache (default: 64)")
    tour.add_argument("--batch", type=int, default=1, help="sequences decoded together (default: 1)")
    _priority(tour)

    prof = sub.add_parser("profile", help="trace every rank; overlap report, merged trace, timeline PNG",
                          description="Profile the given variants on N ranks with torch.profiler and write into "
                                      "--out: a Chrome/Perfetto trace per rank (also a TensorBoard log dir), a merged "
                                      "trace with a row per rank, overlap.json (compute, communication, overlapped "
                                      "and exposed communication per rank and layer) and timeline.png.")
    _common(prof, "small")
    prof.add_argument("--arch", default="standard,ladder",
                      help=f"comma-separated variants from {', '.join(BENCH_VARIANTS)} (default: standard,ladder)")
    prof.add_argument("--tp", type=int, default=2, help="number of ranks (default: 2)")
    prof.add_argument("--phase", choices=["prefill", "decode"], default="decode",
                      help="profile decode steps (one new token) or prefills of --context tokens (default: decode)")
    prof.add_argument("--out", required=True, metavar="DIR", help="output directory (created if missing)")
    prof.add_argument("--steps", type=int, default=4, help="profiled steps after 2 warm-up steps (default: 4)")
    prof.add_argument("--context", type=int, default=64, help="prompt length (default: 64)")
    prof.add_argument("--layers", default=None, metavar="A-B",
                      help="also draw timeline_layers.png zoomed to layers A..B (default: layers 0-2)")
    _priority(prof)

    probe = sub.add_parser("overlap-probe", help="can this machine run an all-reduce while it computes?",
                           description="Micro-benchmark: async all-reduces next to compute bursts of growing "
                                       "length; reports how often the all-reduce finished during the burst and the "
                                       "speedup of waiting one burst later (ladder's rule) over blocking.")
    probe.add_argument("--ranks", type=int, default=None, help="ranks (default: every GPU if several, else 2)")
    probe.add_argument("--iters", type=int, default=30, help="iterations per measurement (default: 30)")
    probe.add_argument("--backend", choices=launch.BACKENDS, default=None,
                       help="process-group backend (default: nccl if there is one GPU per rank, else gloo)")
    probe.add_argument("--json", metavar="FILE", help="also write the results to FILE as JSON")
    _priority(probe)

    check = sub.add_parser("check", help="compare the model on N ranks with the same model on one device",
                           description="Run the model on N ranks and on one device with the same weights and "
                                       "prompt; print the max |logit difference| and whether greedy generation "
                                       "gave the same tokens. Exits 1 on mismatch.")
    _common(check, "tiny")
    check.add_argument("--arch", choices=ARCHS, default="standard", help="block architecture (default: standard)")
    check.add_argument("--tp", type=int, default=2, help="number of ranks (default: 2)")
    check.add_argument("--ladder-layers", type=int, default=0, metavar="K",
                       help="hybrid ladder: make only the last K layers ladder (with --arch standard)")
    check.add_argument("--dtype", choices=["float32", "bfloat16", "float16"], default="float32",
                       help="compute dtype (default: float32; its tolerance is 1e-4)")
    check.add_argument("--tolerance", type=float, default=None,
                       help="max allowed |logit difference| (default: 1e-4 float32, 5e-2 bfloat16, 1e-2 float16)")
    check.add_argument("--new-tokens", type=int, default=8, help="greedy tokens to generate (default: 8)")
    return parser


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
    cfg = get_config(args.preset, arch=args.arch, ladder_layers=args.ladder_layers)
    res = check(cfg, args.tp, seed=args.seed, new_tokens=args.new_tokens, dtype=args.dtype,
                tolerance=args.tolerance, backend=args.backend, timeout_s=args.timeout)
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
    variants = [dict(arch=a) for a in ARCHS] + [dict(arch="standard", ladder_layers=cfg.n_layers // 2)]
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
    from dataclasses import asdict

    from .probe import format_probe, overlap_probe
    res = overlap_probe(args.ranks or launch.default_world_size(), args.comm_priority, args.backend,
                        iters=args.iters)
    _say(format_probe(res))
    _write_json(args.json, {"comm_priority": res["comm_priority"], "rows": [asdict(r) for r in res["rows"]]})
    return 0


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return {"check": cmd_check, "tour": cmd_tour, "profile": cmd_profile,
                "overlap-probe": cmd_overlap_probe}[args.command](args)
    except (ValueError, TypeError, launch.LaunchError) as e:
        print(f"ladder-edu {args.command}: error: {e}", file=sys.stderr)
        return 2
    except launch.RankError as e:
        print(f"ladder-edu {args.command}: {e}", file=sys.stderr)
        return 3


if __name__ == "__main__":
    sys.exit(main())
