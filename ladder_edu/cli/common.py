"""What every ``ladder-edu`` command shares: one-line errors, range-checked options, output on the main rank.

Every numeric option is checked by the parser (``ints(1)``, ``floats(0, 1)`` ...) and every path before any work
starts (``out_dir``, ``out_file``, ``in_file``), so bad input ends with exit status 2 and one line naming the option
and what is valid: ``ladder-edu bench: error: argument --batch: must be an integer >= 1, got '0'``.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile

from ..models.config import PRESETS
from ..util import atomic
from ..tp import launch


class Parser(argparse.ArgumentParser):
    """argparse, but an error is one line (the usage is one ``--help`` away) and exits with status 2."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _number(kind, lo=None, hi=None, lo_open=False):
    name = "an integer" if kind is int else "a number"
    bounds = ([f"> {lo:g}" if lo_open else f">= {lo:g}"] if lo is not None else []) + \
             ([f"<= {hi:g}"] if hi is not None else [])
    valid = " and ".join(bounds)
    want = (f"must be {name}" if kind is int else "must be a finite number") + (f" {valid}" if valid else "")

    def parse(text: str):
        try:
            x = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{want}, got {text!r}") from None
        if x != x or x in (float("inf"), float("-inf")) or (lo is not None and (x <= lo if lo_open else x < lo)) or (hi is not None and x > hi):
            raise argparse.ArgumentTypeError(f"{want}, got {text!r}")
        return x
    parse.__name__ = want                    # what argparse names in its own messages
    parse.valid = valid                      # the valid range, as every message about this option states it
    return parse


def ints(lo=None, hi=None):
    """An integer option in [lo, hi]."""
    return _number(int, lo, hi)


def floats(lo=None, hi=None, lo_open=False):
    """A finite float option in [lo, hi] ((lo, hi] with ``lo_open``)."""
    return _number(float, lo, hi, lo_open)


def int_list(lo=1):
    """A comma-separated list of integers, each >= lo."""
    one = ints(lo)

    def parse(text: str):
        items = [x.strip() for x in text.split(",") if x.strip()]
        if not items:
            raise argparse.ArgumentTypeError(f"must be comma-separated integers >= {lo}, got {text!r}")
        try:
            return [one(x) for x in items]
        except argparse.ArgumentTypeError:
            raise argparse.ArgumentTypeError(f"must be comma-separated integers >= {lo}, got {text!r}") from None
    parse.valid = f"integers >= {lo}"
    return parse


def ladder_layers():
    """``K`` (the top K layers) or comma-separated layer indices (``4,5,9``; one layer: ``7,``). The range is
    checked against the model once it is known (``config.parse_ladder_layers``)."""
    def parse(text: str):
        text = text.strip()
        try:
            if "," in text:
                items = tuple(int(x) for x in text.split(",") if x.strip())
                if items and min(items) >= 0:
                    return items
            elif int(text) >= 0:
                return int(text)
        except ValueError:
            pass
        raise argparse.ArgumentTypeError(f"must be K >= 0 (the top K layers) or comma-separated layer indices >= 0 "
                                         f"(e.g. 4,5,9; one layer: 7,), got {text!r}")
    parse.valid = "K >= 0 (the top K layers) or comma-separated layer indices"
    return parse


def choice_list(valid):
    """A comma-separated list of names from ``valid``."""
    def parse(text: str):
        items = [x.strip() for x in text.split(",") if x.strip()]
        bad = [x for x in items if x not in valid]
        if not items or bad:
            raise argparse.ArgumentTypeError(f"unknown {', '.join(map(repr, bad)) or 'empty list'}; valid choices: "
                                             f"comma-separated from {', '.join(valid)}")
        return items
    parse.valid = f"comma-separated from {', '.join(valid)}"
    parse.choices = tuple(valid)
    return parse


def layer_range(text: str):
    """``A-B`` with 0 <= A <= B."""
    a, sep, b = text.partition("-")
    if sep and a.isdigit() and b.isdigit() and int(a) <= int(b):
        return int(a), int(b)
    raise argparse.ArgumentTypeError(f"must be A-B with integers 0 <= A <= B (e.g. 0-2), got {text!r}")


layer_range.valid = "0 <= A <= B"


def _writable_dir(path: str) -> str | None:
    """Why ``path`` cannot be (created as) a writable directory, or None."""
    probe = os.path.abspath(path)
    while not os.path.exists(probe):
        probe = os.path.dirname(probe)
    if not os.path.isdir(probe):
        return f"{probe!r} is not a directory"
    try:
        with tempfile.TemporaryFile(dir=probe):
            pass
    except OSError as e:
        return f"cannot write in {probe!r} ({e.strerror or e})"
    return None


def out_dir(path: str) -> str:
    """A directory that exists and is writable, or can be created."""
    why = _writable_dir(path)
    if why:
        raise argparse.ArgumentTypeError(f"cannot write output directory {path!r}: {why}; must be a writable "
                                         f"directory")
    return path


out_dir.valid = "must be a writable directory"


def out_file(path: str) -> str:
    """A file that can be written (its directory exists or can be created; it is not a directory)."""
    if os.path.isdir(path):
        raise argparse.ArgumentTypeError(f"{path!r} is a directory; must be a writable file path")
    why = _writable_dir(os.path.dirname(os.path.abspath(path)))
    if why:
        raise argparse.ArgumentTypeError(f"cannot write {path!r}: {why}; must be a writable file path")
    return path


out_file.valid = "must be a writable file path"


def in_file(path: str) -> str:
    """A file that exists and can be read."""
    if not os.path.isfile(path):
        raise argparse.ArgumentTypeError(f"no such file: {path!r}; must be an existing, readable file")
    if not os.access(path, os.R_OK):
        raise argparse.ArgumentTypeError(f"cannot read {path!r} (permission denied); must be an existing, "
                                         f"readable file")
    return path


def in_dir(path: str) -> str:
    """A directory that exists."""
    if not os.path.isdir(path):
        raise argparse.ArgumentTypeError(f"no such directory: {path!r}; must be an existing directory")
    return path


def source(text: str) -> str:
    """'smollm2', a .gguf file or a Hugging Face Llama directory that exists."""
    if text == "smollm2" or os.path.isdir(text) or (os.path.isfile(text) and text.endswith(".gguf")):
        return text
    raise argparse.ArgumentTypeError(f"must be 'smollm2', an existing .gguf file or a Hugging Face Llama "
                                     f"directory, got {text!r}")


def is_main_rank() -> bool:
    return not launch.under_torchrun() or int(os.environ.get("RANK", "0")) == 0


def say(*args):
    if is_main_rank():
        print(*args, flush=True)


def write_json(path: str | None, data):
    if path and is_main_rank():
        atomic.write_json(path, data, indent=2)
        print(f"wrote {path}")


def launch_options(args: argparse.Namespace, **changes) -> launch.LaunchOptions:
    """The launcher's options from a command's --backend, --timeout and --comm-priority (those it has)."""
    given = {"backend": getattr(args, "backend", None), "timeout_s": getattr(args, "timeout", None),
             "comm_priority": getattr(args, "comm_priority", None)}
    return launch.LaunchOptions(**{k: v for k, v in {**given, **changes}.items() if v is not None})


def add_common(p: argparse.ArgumentParser, preset: str):
    p.add_argument("--preset", default=preset, choices=sorted(PRESETS),
                   help=f"model shape (default: {preset}); 'tiny' and 'small' are CPU-sized, the others are the "
                        "papers' shapes and need real memory")
    p.add_argument("--backend", choices=launch.BACKENDS, default=None,
                   help="process-group backend (default: nccl if there is one GPU per rank, else gloo)")
    p.add_argument("--timeout", type=floats(0, 86400, lo_open=True), default=60.0,
                   help="seconds a collective may wait before the job fails with a timeout error, up to a day (default: 60)")
    p.add_argument("--seed", type=ints(0), default=0, help="seed of the random weights and prompt (default: 0)")
    p.add_argument("--json", metavar="FILE", type=out_file, help="also write the results to FILE as JSON")


def add_priority(p: argparse.ArgumentParser):
    p.add_argument("--comm-priority", choices=launch.COMM_PRIORITIES, default="auto",
                   help="CPU only: run gloo's communication threads in a real-time scheduling class so they can "
                        "preempt compute ('realtime', needs root or CAP_SYS_NICE), leave them alone ('normal'), or "
                        "realtime where allowed ('auto', default)")


def add_plan(p: argparse.ArgumentParser):
    p.add_argument("--plan", action="store_true",
                   help="check every option, print what would run and with which settings, and exit 0 without "
                        "running it")


def show_plan(command: str, lines) -> int:
    """``--plan``: the settings a run would use, one per line; nothing is run."""
    say(f"ladder-edu {command} --plan (nothing is run); it would run with:")
    for line in lines:
        say(f"  {line}")
    return 0


def stderr(*args):
    print(*args, file=sys.stderr, flush=True)
