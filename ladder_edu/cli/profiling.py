"""``ladder-edu profile`` (traces, overlap report, timelines) and ``ladder-edu overlap-probe``."""
from __future__ import annotations

import os
from dataclasses import asdict

from ..models.config import BENCH_VARIANTS, PREFILL_VARIANTS, get_config
from ..models.registry import ISO, PHASES
from ..tp import launch
from .common import (add_common, add_priority, choice_list, ints, launch_options, layer_range, out_dir, out_file,
                     say, write_json)


def add_parsers(sub):
    prof = sub.add_parser("profile", help="trace every rank; overlap report, merged trace, timeline PNG",
                          description="Profile the given variants on N ranks with torch.profiler and write into "
                                      "--out: a Chrome/Perfetto trace per rank (also a TensorBoard log dir), a merged "
                                      "trace with a row per rank, overlap.json (compute, communication, overlapped "
                                      "room, and exposed communication per rank and layer) and timeline.png.")
    add_common(prof, "small")
    prof.add_argument("--arch", default="standard,ladder", type=choice_list(PREFILL_VARIANTS),
                      help=f"comma-separated variants from {', '.join(BENCH_VARIANTS)}, and {ISO!r} with --phase "
                           f"prefill (default: standard,ladder)")
    prof.add_argument("--tp", type=ints(1), default=2, help="number of ranks (default: 2)")
    prof.add_argument("--phase", choices=PHASES, default="decode",
                      help="profile decode steps (one new token) or prefills of --context tokens (default: decode)")
    prof.add_argument("--out", required=True, metavar="DIR", type=out_dir,
                      help="output directory (created if missing)")
    prof.add_argument("--steps", type=ints(1), default=4, help="profiled steps after 2 warm-up steps (default: 4)")
    prof.add_argument("--context", type=ints(1), default=64, help="prompt length (default: 64)")
    prof.add_argument("--layers", default=(0, 2), metavar="A-B", type=layer_range,
                      help="also draw timeline_layers.png zoomed to layers A..B (default: layers 0-2)")
    add_priority(prof)

    probe = sub.add_parser("overlap-probe", help="can this machine run an all-reduce while it computes?",
                           description="Micro-benchmark: async all-reduces next to compute bursts of growing "
                                       "length; reports how often the all-reduce finished during the burst and the "
                                       "speedup of waiting one burst later (ladder's rule) over blocking.")
    probe.add_argument("--ranks", type=ints(2), default=None, help="ranks (default: every GPU if several, else 2)")
    probe.add_argument("--iters", type=ints(1), default=30, help="iterations per measurement (default: 30)")
    probe.add_argument("--backend", choices=launch.BACKENDS, default=None,
                       help="process-group backend (default: nccl if there is one GPU per rank, else gloo)")
    probe.add_argument("--json", metavar="FILE", type=out_file, help="also write the results to FILE as JSON")
    add_priority(probe)


def cmd_profile(args) -> int:
    import matplotlib
    matplotlib.use("Agg")
    from ..profiling.overlap import analyze, load_trace, report_table
    from ..teach.timeline import draw_timeline
    from ..profiling.trace import profile
    cfg = get_config(args.preset)
    traces = profile(cfg, args.arch, args.tp, args.phase, args.out, steps=args.steps, context=args.context,
                     seed=args.seed, options=launch_options(args))
    reports = {v: [analyze(load_trace(p), rank=r) for r, p in enumerate(paths)] for v, paths in traces.items()}
    say(report_table(reports))
    out = {"preset": cfg.name, "tp": args.tp, "phase": args.phase, "steps": args.steps, "variants": {
        v: [dict(rank=r.rank, device=r.device, steps=r.steps, per_step=r.per_step(), layers=r.layers)
            for r in reps] for v, reps in reports.items()}}
    write_json(os.path.join(args.out, "overlap.json"), out)
    for name, layers in (("timeline.png", None), ("timeline_layers.png", args.layers)):
        fig = draw_timeline(traces, layers=layers)
        fig.savefig(os.path.join(args.out, name), dpi=110)
        say(f"wrote {os.path.join(args.out, name)}")
    say(f"open {args.out}/<variant>.merged.trace.json at https://ui.perfetto.dev or chrome://tracing; "
        f"TensorBoard: tensorboard --logdir {args.out}/traces (pip install ladder_edu[tensorboard])")
    write_json(args.json, out)
    return 0


def cmd_overlap_probe(args) -> int:
    from ..profiling.probe import format_probe, overlap_probe
    res = overlap_probe(args.ranks or launch.default_world_size(), args.comm_priority, args.backend,
                        iters=args.iters)
    say(format_probe(res))
    write_json(args.json, {"comm_priority": res["comm_priority"], "rows": [asdict(r) for r in res["rows"]]})
    return 0


COMMANDS = {"profile": cmd_profile, "overlap-probe": cmd_overlap_probe}
