"""``ladder-edu``: the command line. ``python -m ladder_edu`` runs the same thing.

Every sub-command runs real ranks: it spawns them itself (gloo on a CPU, NCCL with one GPU per rank), or, under
``torchrun``, runs as the rank torchrun started (``torchrun --nproc_per_node=8 -m ladder_edu check --tp 8``).
Each command group lives in its own module (``run``, ``profiling``, ``bench``, ``predict``, ``recovery``, ``assess``) with its
parser and what it does; this one assembles them and turns errors into one line and an exit status.
"""
from __future__ import annotations

import sys

from ..tp import launch
from . import assess, bench, predict, profiling, recovery, run
from .common import Parser, stderr

GROUPS = (run, profiling, bench, predict, recovery, assess)

EPILOG = """examples:
  ladder-edu tour                                   # the 1-minute tour on 2 CPU ranks
  ladder-edu check --arch ladder --tp 2             # TP=2 equals one device?
  ladder-edu finetune --ladder-layers 15            # convert SmolLM2 to hybrid ladder and recover it
  ladder-edu check --ladder-layers 2 --tp 4         # hybrid: only the last 2 layers are ladder
  torchrun --standalone --nproc_per_node=8 -m ladder_edu check --arch ladder --tp 8 --preset small
"""


def build_parser() -> Parser:
    import argparse
    parser = Parser(
        prog="ladder-edu", formatter_class=argparse.RawDescriptionHelpFormatter, epilog=EPILOG,
        description="Tensor-parallel transformers that overlap communication with computation: standard, "
                    "parallel-block and ladder residual, on real torch.distributed process groups.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for group in GROUPS:
        group.add_parsers(sub)
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    commands = {name: fn for group in GROUPS for name, fn in group.COMMANDS.items()}
    try:
        return commands[args.command](args)
    except (ValueError, TypeError, launch.LaunchError) as e:
        stderr(f"ladder-edu {args.command}: error: {e}")
        return 2
    except launch.RankError as e:
        stderr(f"ladder-edu {args.command}: {e}")
        return 3
    except KeyboardInterrupt:
        stderr(f"ladder-edu {args.command}: interrupted")
        return 130


if __name__ == "__main__":
    sys.exit(main())
