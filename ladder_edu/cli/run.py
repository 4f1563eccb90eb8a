"""``ladder-edu tour`` (the main job) and ``ladder-edu check`` (TP on N ranks == one device)."""
from __future__ import annotations

from ..models.config import ARCHS, BENCH_VARIANTS, get_config
from ..models.decoder import DTYPES
from ..tp import launch
from .common import add_common, add_priority, floats, ints, ladder_layers, launch_options, out_file, say, write_json


def add_parsers(sub):
    tour = sub.add_parser("tour", help="check TP == one device for every architecture, then time decode",
                          description="The main job: build a small model, check that TP equals one device for "
                                      "standard, parallel and ladder (and hybrid ladder), then time decode for the "
                                      "three plus upper_bound and print latency, speedup and communication share.")
    add_common(tour, "small")
    tour.add_argument("--tp", type=ints(1), default=None,
                      help="number of ranks (default: the number of GPUs if there are several, else 2 CPU ranks)")
    tour.add_argument("--rounds", type=ints(1), default=8,
                      help="interleaved timing rounds per variant (default: 8; more = tighter medians)")
    tour.add_argument("--steps", type=ints(1), default=16, help="decode steps timed per round (default: 16)")
    tour.add_argument("--context", type=ints(1), default=64, help="prompt length in the KV cache (default: 64)")
    tour.add_argument("--batch", type=ints(1), default=1, help="sequences decoded together (default: 1)")
    add_priority(tour)

    check = sub.add_parser("check", help="compare the model on N ranks with the same model on one device",
                           description="Run the model on N ranks and on one device with the same weights and "
                                       "prompt; print the max |logit difference| and whether greedy generation "
                                       "gave the same tokens. Exits 1 on mismatch.")
    add_common(check, "tiny")
    check.add_argument("--arch", choices=ARCHS, default="standard", help="block architecture (default: standard)")
    check.add_argument("--tp", type=ints(1), default=2, help="number of ranks (default: 2)")
    check.add_argument("--ladder-layers", type=ladder_layers(), default=0, metavar="K|I,J,..",
                       help="hybrid ladder (with --arch standard): the top K layers, or the layers I,J,.. (one "
                            "layer: I,)")
    check.add_argument("--dtype", choices=list(DTYPES), default="float32",
                       help="compute dtype (default: float32; its tolerance is 1e-4)")
    check.add_argument("--tolerance", type=floats(0), default=None,
                       help="max allowed |logit difference| (default: 1e-4 float32, 5e-2 bfloat16, 1e-2 float16)")
    check.add_argument("--new-tokens", type=ints(1), default=8, help="greedy tokens to generate (default: 8)")
    env = sub.add_parser("env", help="what this machine can run: devices, backends, GPU links, what fits",
                         description="Devices, process-group backends (gloo, NCCL and its version), peer access and "
                                     "NVLink between each pair of GPUs, cores, whether real-time communication "
                                     "threads are allowed, and the largest preset and TP degree that fit. Run it on "
                                     "each lab machine before class.")
    env.add_argument("--json", metavar="FILE", type=out_file, help="also write the report to FILE as JSON")

    check.add_argument("--compile", action="store_true",
                       help="the ranks decode with torch.compile (static-shape KV cache; CUDA graphs on GPUs), "
                            "compared with the eager single-device model")


def cmd_check(args) -> int:
    from ..models.check import check
    extra = {"kraken_degree": args.tp} if args.arch == "kraken" and args.tp > 1 else {}
    cfg = get_config(args.preset, arch=args.arch, ladder_layers=args.ladder_layers, **extra)
    res = check(cfg, args.tp, seed=args.seed, new_tokens=args.new_tokens, dtype=args.dtype,
                tolerance=args.tolerance, compile=args.compile, options=launch_options(args))
    say(res.summary())
    write_json(args.json, res.to_dict())
    return 0 if res.passed else 1


def default_tp(cfg) -> int:
    """All ranks there are (see launch.default_world_size), rounded down to a TP degree that shards ``cfg``."""
    n = launch.default_world_size()
    if launch.under_torchrun():
        return n
    return max(t for t in cfg.valid_tp_degrees() if t <= n)


def cmd_tour(args) -> int:
    from ..models.check import check
    from ..perf.measure.bench import decode_benchmark
    cfg = get_config(args.preset)
    tp = args.tp or default_tp(cfg)
    backend = args.backend or launch.default_backend(tp)
    say(f"ladder-edu tour: preset {cfg.name} ({cfg.num_params() / 1e6:.1f}M parameters, {cfg.n_layers} layers, "
        f"dim {cfg.dim}), TP={tp} over {backend}\n\n1) Is TP={tp} the same model as one device? (float32)")
    results, ok = [], True
    variants = [dict(arch=a) for a in ARCHS if a != "kraken"] + [dict(arch="standard", ladder_layers=cfg.n_layers // 2)]
    try:                                       # Kraken needs one sub-layer per rank: kraken_degree = tp
        cfg.replace(arch="kraken", kraken_degree=tp)
        variants.append(dict(arch="kraken", kraken_degree=tp))
    except ValueError:
        pass
    for kw in variants:
        res = check(cfg.replace(**kw), tp, seed=args.seed, options=launch_options(args, backend=backend))
        ok &= res.passed
        results.append(res.to_dict())
        say("  " + res.summary())
    say(f"\n2) Decode speed ({args.rounds} interleaved rounds x {args.steps} steps per variant)")
    bench = decode_benchmark(cfg, tp, BENCH_VARIANTS, batch=args.batch, context=args.context, steps=args.steps,
                             rounds=args.rounds, seed=args.seed, options=launch_options(args, backend=backend))
    say("  " + bench.table().replace("\n", "\n  "))
    if backend == "gloo":
        say("\n  On a CPU, gloo communicates from threads that need the same cores as compute, so TP is slower than "
            "one process and an all-reduce can hide behind compute only where a core is free: this teaches "
            "mechanics and relative effects, not speed-ups. `ladder-edu overlap-probe` measures your machine.")
    write_json(args.json, {"checks": results, "decode": bench.to_dict()})
    return 0 if ok else 1


def cmd_env(args) -> int:
    from ..perf.measure.environment import format_report, report
    r = report()
    say(format_report(r))
    write_json(args.json, r)
    return 0


COMMANDS = {"tour": cmd_tour, "check": cmd_check, "env": cmd_env}
