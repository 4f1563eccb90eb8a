"""Run a student's function on real ranks and say, in words, whether it is right.

A function defined in a notebook cell cannot be sent to spawned ranks (they cannot import ``__main__``), so its
*source* is sent (``inspect.getsource``: IPython keeps every cell's text) and each rank compiles it in a fresh
namespace with ``torch``, ``dist``, ``F``, ``math`` and ``deque`` imported. The rank runs the exercise's test,
catches whatever the student's code raises, and returns a small verdict; the notebook prints PASS, or what is
wrong and a hint, never a bare traceback. Ranks: every GPU if there are several (NCCL), else 2 CPU ranks (gloo).
"""
from __future__ import annotations

import inspect
import textwrap
import traceback
from dataclasses import dataclass, field

from ..tp import launch

PRELUDE = ("import math\nimport torch\nimport torch.distributed as dist\nimport torch.nn.functional as F\n"
           "from collections import deque\n")


@dataclass
class Verdict:
    """What a check found: passed, a one-line problem, a hint, and details per rank."""
    passed: bool
    problem: str = ""
    hint: str = ""
    details: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        if self.passed:
            return "PASS" + (f": {self.problem}" if self.problem else "")
        lines = [f"NOT YET: {self.problem}"] + [f"  {d}" for d in self.details[:4]]
        return "\n".join(lines + ([f"  hint: {self.hint}"] if self.hint else []))

    def _repr_pretty_(self, p, cycle):          # IPython shows the verdict as text
        p.text(str(self))


SHAPE_HINT = ("a shape mismatch: check which dimension you sharded (column-parallel: the weight's rows, the output "
              "features; row-parallel: its columns, the input features)")


def failed(problem: str) -> Verdict:
    """A verdict for a problem the student's code raised, with a hint where the message allows one."""
    return Verdict(False, problem, SHAPE_HINT if "shape" in problem else "")


def source_of(fn) -> tuple[str, str]:
    """(source text, name) of a student's function, ready to send to the ranks."""
    if not callable(fn) or not hasattr(fn, "__name__"):
        raise TypeError(f"pass your function itself (e.g. check(my_function)), not {type(fn).__name__}")
    try:
        return textwrap.dedent(inspect.getsource(fn)), fn.__name__
    except (OSError, TypeError) as e:
        raise TypeError(f"cannot read the source of {fn.__name__!r} ({e}); define it with `def` in a cell") from e


def load(source: str, name: str):
    """Compile the student's source on this rank; returns (function, None) or (None, a one-line problem)."""
    namespace: dict = {}
    try:
        exec(compile(PRELUDE + source, f"<your {name}>", "exec"), namespace)
    except Exception as e:  # noqa: BLE001 - a student's syntax error is a verdict, not a crash
        return None, f"your code does not compile: {type(e).__name__}: {e}"
    return namespace[name], None


def call(fn, *args):
    """Call the student's function; returns (result, None) or (None, where and what it raised)."""
    try:
        return fn(*args), None
    except NotImplementedError:
        return None, "this exercise is not written yet (it still raises NotImplementedError)"
    except Exception as e:  # noqa: BLE001
        frames = [f for f in traceback.extract_tb(e.__traceback__) if f.filename.startswith("<your")]
        where = f" (line {frames[-1].lineno - PRELUDE.count(chr(10))} of your function)" if frames else ""
        return None, f"your function raised {type(e).__name__}: {e}{where}"


def run_check(worker, fn, *args, world: int | None = None, timeout_s: float = 60.0) -> Verdict:
    """Send ``fn``'s source to ``world`` ranks, run ``worker(source, name, *args)`` on each, merge the verdicts:
    the first rank that failed speaks for all."""
    source, name = source_of(fn)
    world = world or max(2, launch.default_world_size())
    try:
        results = launch.run(worker, world, source, name, *args, timeout_s=timeout_s, deadline_s=300)
    except launch.CollectiveTimeout:
        return Verdict(False, f"the ranks waited more than {timeout_s:g} s in a collective",
                       "every rank must make the same collectives in the same order (is an all_reduce inside an "
                       "`if rank == ...`?)")
    except launch.RankError as e:
        return Verdict(False, f"a rank crashed outside your function: {str(e).splitlines()[0]}")
    for r, v in enumerate(results):
        if not v.passed:
            v.details = [f"rank {r}: {d}" for d in v.details] or [f"seen on rank {r}"]
            return v
    return Verdict(True, f"checked on {world} ranks ({launch.default_backend(world)})")
