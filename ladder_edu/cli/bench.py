"""``ladder-edu bench``: interleaved timing of the variants over TP degrees, batches and lengths."""
from __future__ import annotations

from dataclasses import asdict

from ..models.compiled import MODES
from ..models.config import ALL_VARIANTS, BENCH_VARIANTS, PREFILL_VARIANTS, get_config
from ..models.spec import RunSpec
from ..models.decoder import DTYPES
from ..models.registry import EMULATED, ISO, PHASES, require
from .common import (add_common, add_priority, choice_list, int_list, ints, is_main_rank, launch_options, out_file,
                     say, source, write_json)

COMPILE_MODES = ("auto", *MODES)           # auto: reduce-overhead (CUDA graphs) on a GPU, default on a CPU


def add_parsers(sub):
    from ..perf.model.perfmodel import HARDWARE
    bench = sub.add_parser("bench", help="time prefill or decode for variants x TP degrees x batches x lengths",
                           description="Interleaved timing (warm-up, barrier per step, slowest rank, median and "
                                       "p10-p90) of each variant for every combination of --tp, --batch and "
                                       "--context. Writes JSON, CSV and a plot. On GPUs, run with "
                                       "NCCL_P2P_DISABLE=1 to emulate 'no NVLink' as the Ladder paper did.")
    add_common(bench, "small")
    bench.add_argument("--arch", default=None, type=choice_list(PREFILL_VARIANTS),
                       help=f"comma-separated variants (default: {','.join(ALL_VARIANTS)}; with --emulate-tp "
                            f"{','.join(BENCH_VARIANTS)}); kraken = Kraken with one sub-layer per rank and the same "
                            f"parameters per layer; with --phase prefill also {ISO!r}, the standard model's prefill "
                            f"split into interleaved chunks")
    bench.add_argument("--tp", default=[2], type=int_list(1), help="comma-separated TP degrees (default: 2)")
    bench.add_argument("--phase", choices=PHASES, default="decode",
                       help="time decode steps (one new token, KV cache of --context) or prefills of --context "
                            "tokens (default: decode)")
    bench.add_argument("--batch", default=[1], type=int_list(1), help="comma-separated batch sizes (default: 1)")
    bench.add_argument("--context", default=[64], type=int_list(1),
                       help="comma-separated prompt lengths: the KV cache for decode, the prompt for prefill "
                            "(default: 64)")
    bench.add_argument("--steps", type=ints(1), default=16, help="timed steps per variant per round (default: 16)")
    bench.add_argument("--rounds", type=ints(1), default=6, help="interleaved rounds (default: 6)")
    bench.add_argument("--csv", metavar="FILE", type=out_file, help="also write one row per measurement to FILE as CSV")
    bench.add_argument("--plot", metavar="FILE", type=out_file,
                       help="also draw the medians with p10-p90 whiskers to FILE (PNG)")
    bench.add_argument("--compile", nargs="?", const="auto", default=None, metavar="MODE", choices=COMPILE_MODES,
                       help=f"time torch.compile'd decode steps (static-shape KV cache; ladder_edu/models/compiled.py). "
                            "MODE: auto (default: reduce-overhead = CUDA graphs on GPUs, as the Ladder paper's "
                            f"gpt-fast setup; default on CPUs), {', '.join(MODES)}. Compiling takes seconds to "
                            "minutes per variant, untimed")
    bench.add_argument("--emulate-tp", type=ints(2), default=None, metavar="N",
                       help="emulated rank: run rank 0's 1/N shard of --preset on one device, every all-reduce "
                            "replaced by a wait of the duration the interconnect model predicts for --gpu "
                            "(communication MODELED, not measured)")
    bench.add_argument("--graph", action="store_true",
                       help="with --emulate-tp, on CUDA: capture each variant's decode step whole in a CUDA graph "
                            "(compute on one stream, each modeled all-reduce a timed kernel on a second, joined "
                            "where the real path waits), replay it --steps times per round, and print the "
                            "performance model's step and the HBM floor beside it (ladder_edu/perf/measure/graphed.py)")
    bench.add_argument("--gpu", default="h100-nvlink", choices=sorted(HARDWARE),
                       help="with --emulate-tp: the interconnect whose all-reduce times are modeled "
                            "(default: h100-nvlink)")
    bench.add_argument("--layers", type=ints(1), default=None,
                       help="with --emulate-tp: keep only this many layers (a CPU cannot hold 70B/8)")
    bench.add_argument("--dtype", choices=list(DTYPES), default=None,
                       help="with --emulate-tp: weights dtype (default: bfloat16 on CUDA, float32 on CPU)")
    add_priority(bench)

    hf = sub.add_parser("compare-hf", help="greedy decode speed: this package's model vs transformers' Llama",
                        description="The same checkpoint in this package's model and in transformers' "
                                    "LlamaForCausalLM, the same prompt and threads, greedy decode timed in "
                                    "interleaved rounds (median and range of tokens/s; whether the tokens agree).")
    hf.add_argument("--source", default="smollm2", type=source,
                    help="checkpoint: smollm2 (default), a .gguf file or a Hugging Face model directory")
    hf.add_argument("--tokens", type=ints(1), default=32, help="new tokens per round (default: 32)")
    hf.add_argument("--prompt", type=ints(1), default=32, help="prompt tokens (default: 32)")
    hf.add_argument("--rounds", type=ints(1), default=5, help="interleaved rounds (default: 5)")
    hf.add_argument("--threads", type=ints(1), default=1, help="intra-op threads for both (default: 1)")
    hf.add_argument("--json", metavar="FILE", type=out_file, help="also write the results to FILE as JSON")


def cmd_bench(args) -> int:
    import csv
    import itertools

    from tqdm import tqdm

    from ..perf.measure.bench import decode_benchmark
    cfg = get_config(args.preset)
    default = BENCH_VARIANTS if args.emulate_tp else ALL_VARIANTS
    variants = args.arch or list(default)
    combos = list(itertools.product(args.tp, args.batch, args.context))
    results = []
    if args.emulate_tp:
        require(variants, EMULATED, "--emulate-tp (one emulated Megatron shard)")
    if args.compile and args.emulate_tp:
        raise ValueError("--compile cannot be combined with --emulate-tp: the emulated rank's modeled "
                         "waits (Python threads, CUDA sleeps) are not traceable; drop one of them")
    if args.graph and not args.emulate_tp:
        raise ValueError("--graph captures the emulated rank: add --emulate-tp N (real ranks: --compile, whose "
                         "reduce-overhead mode uses CUDA graphs)")
    if args.graph and args.phase != "decode":
        raise ValueError("--graph captures decode steps; valid with it: --phase decode")
    graphed = []
    if args.emulate_tp:
        import torch

        from ..perf.measure.emulate import emulated_benchmark
        if args.graph and not torch.cuda.is_available():
            raise ValueError("--graph needs a CUDA GPU (none here); on a CPU drop --graph: the eager emulated rank "
                             "runs anywhere")
        from ..perf.model.perfmodel import get_hardware
        hw = get_hardware(args.gpu)
        if args.layers:
            cfg = cfg.replace(n_layers=args.layers, ladder_layers=0)
        dtype = args.dtype or ("bfloat16" if torch.cuda.is_available() else "float32")
        say(f"EMULATED RANK: rank 0's 1/{args.emulate_tp} shard of {cfg.name} ({cfg.n_layers} layers) on one "
             f"device; all-reduce times are MODELED for {hw.name}, not measured")
    for tp, batch, context in tqdm(combos, desc="bench", unit="config", disable=not is_main_rank()):
        if args.graph:
            from ..perf.measure.graphed import graphed_benchmark
            g = graphed_benchmark(RunSpec(cfg, args.emulate_tp, tuple(variants), "decode", batch, context,
                                          args.steps, args.rounds, seed=args.seed, dtype=dtype), hw)
            graphed.append(g.to_dict())
            say(g.table())
            results.append(g.bench)
            continue
        if args.emulate_tp:
            res = emulated_benchmark(RunSpec(cfg, args.emulate_tp, tuple(variants), args.phase, batch, context,
                                             args.steps, args.rounds, seed=args.seed, dtype=dtype), hw)
        else:
            res = decode_benchmark(cfg, tp, variants, batch=batch, context=context, steps=args.steps,
                                   rounds=args.rounds, seed=args.seed, phase=args.phase, compile_mode=args.compile,
                                   options=launch_options(args))
        results.append(res)
        say(res.table())
    rows = [dict(phase=r.phase, preset=r.preset, tp=r.tp, backend=r.backend, comm_priority=r.comm_priority,
                 batch=r.batch, context=r.context, tokens_per_s=r.tokens_per_s(v.variant), **asdict(v),
                 compiled=r.compiled)
            for r in results for v in r.rows]
    write_json(args.json, {"results": [r.to_dict() for r in results], "rows": rows, "graphed": graphed})
    if args.csv and is_main_rank():
        with open(args.csv, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
        print(f"wrote {args.csv}")
    if args.plot and is_main_rank():
        import matplotlib
        matplotlib.use("Agg")
        from ..teach.diagrams import plot_bench
        plot_bench(results).savefig(args.plot, dpi=110)
        print(f"wrote {args.plot}")
    return 0


def cmd_compare_hf(args) -> int:
    from ..models.pretrained import load_checkpoint
    from ..perf.measure.hf_decode import decode_vs_transformers, table
    cfg, state = load_checkpoint(args.source)
    res = decode_vs_transformers(cfg, state, args.prompt, args.tokens, args.rounds, args.threads)
    say(table(res))
    write_json(args.json, res)
    return 0


COMMANDS = {"bench": cmd_bench, "compare-hf": cmd_compare_hf}
