"""Run a student's function on real ranks and say, in words, whether it is right.

A function defined in a notebook cell cannot be sent to spawned ranks (they cannot import ``__main__``), so its
*source* is sent (``inspect.getsource``: IPython keeps every cell's text) and each rank compiles it in a fresh
namespace with ``torch``, ``dist``, ``F``, ``math`` and ``deque`` imported. The rank runs the exercise's test,
catches whatever the student's code raises, and returns a small verdict; the notebook prints PASS, or what is
wrong and a hint, never a bare traceback. Ranks: every GPU if there are several (NCCL), else 2 CPU ranks (gloo).

Bounded: the student's function gets ``bound_s`` seconds per call (30 by default; ``LADDER_EDU_CHECK_BOUND_S`` or
``run_check(..., bound_s=)`` to change it). A function that loops, sleeps or prints forever is interrupted there
(a timer signal in the rank) and the verdict says so; what it prints is kept to a few lines and never floods the
notebook; a rank that exits or is killed is reported as such; a collective that another rank never joins ends
after the bound too. Several checks may run at once on one machine: each job has its own free port (on GPUs, give
each student their own devices with ``CUDA_VISIBLE_DEVICES``).
"""
from __future__ import annotations

import contextlib
import functools
import inspect
import io
import os
import re
import signal
import textwrap
import traceback
from dataclasses import dataclass, field
from typing import Callable

from ..tp import launch
from . import collectives

DEFAULT_BOUND_S = 30.0
BOUND_S = None          # set on each rank by run_check: seconds the student's function may take per call
PRINT_LIMIT = 2000      # characters of the student's printed output kept for the verdict


def default_bound() -> float:
    """Seconds a student's function may run per call: ``LADDER_EDU_CHECK_BOUND_S``, else 30."""
    text = os.environ.get("LADDER_EDU_CHECK_BOUND_S", "")
    try:
        bound = float(text) if text else DEFAULT_BOUND_S
    except ValueError:
        raise ValueError(f"LADDER_EDU_CHECK_BOUND_S must be a number of seconds > 0, got {text!r}") from None
    if not bound > 0:
        raise ValueError(f"LADDER_EDU_CHECK_BOUND_S must be a number of seconds > 0, got {text!r}")
    return bound


class _OutOfTime(BaseException):
    """Raised in the rank's main thread when the student's function runs past the bound (not an Exception, so a
    student's ``except Exception`` cannot swallow it)."""


class _Capped(io.TextIOBase):
    """A stdout that keeps the first PRINT_LIMIT characters and counts the rest."""

    def __init__(self):
        self.kept, self.total = [], 0

    def write(self, s):
        if self.total < PRINT_LIMIT:
            self.kept.append(s[:PRINT_LIMIT - self.total])
        self.total += len(s)
        return len(s)

    def text(self) -> str:
        return "".join(self.kept)


PRELUDE = ("import math\nimport torch\nimport torch.distributed as dist\nimport torch.nn.functional as F\n"
           "from collections import deque\n")


@dataclass
class Verdict:
    """What a check found: passed, a one-line problem, a hint, details per rank, and ``rows``: what the check
    measured on the way, for the notebook to show."""
    passed: bool
    problem: str = ""
    hint: str = ""
    details: list[str] = field(default_factory=list)
    rows: list[dict] = field(default_factory=list)

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


@dataclass(frozen=True)
class Misconception:
    """A wrong answer students give: ``answer(*args)`` computes it from the check's inputs, ``problem`` names the
    mistake and ``hint`` points to the concept (each is planted in tests/test_labs*.py and must be named)."""
    answer: Callable
    problem: str
    hint: str


def diagnose(got, args: tuple, misconceptions, close: Callable) -> Misconception | None:
    """The first misconception whose answer ``close(got, answer)`` accepts, else None."""
    for m in misconceptions:
        try:
            if close(got, m.answer(*args)):
                return m
        except Exception:  # noqa: BLE001 - a misconception that does not apply to these inputs
            continue
    return None


def load_student(fn, allow_package: bool = False):
    """(``fn`` compiled afresh from its source, None), or (None, the failed Verdict saying why it cannot run)."""
    return load(*source_of(fn), allow_package=allow_package)


PACKAGE = re.compile(r"\bladder_edu\b")


def load(source: str, name: str, allow_package: bool = False):
    """Compile the student's source here; returns (function, None) or (None, a failed Verdict saying why). The
    function's ``dist`` records each collective it makes (``collectives.CountingDist``). A function that uses this
    package is refused unless the exercise asks for it (``allow_package``): the package holds the references."""
    if not allow_package and PACKAGE.search(source):
        return None, Verdict(False, "your function uses ladder_edu", "this exercise asks you to write the piece "
                             "yourself: the package's version is what the check compares with")
    namespace: dict = {}
    try:
        exec(compile(PRELUDE + source, f"<your {name}>", "exec"), namespace)
    except Exception as e:  # noqa: BLE001 - a student's syntax error is a verdict, not a crash
        return None, failed(f"your code does not compile: {type(e).__name__}: {e}")
    if name not in namespace or not callable(namespace[name]):
        return None, failed(f"your cell does not define a function named {name}")
    namespace["dist"] = collectives.CountingDist()
    return namespace[name], None


def on_rank(source: str, name: str):
    """On a rank of a check: (the student's function or None, a failed Verdict or None, rank, world size,
    device)."""
    import torch.distributed as dist
    fn, bad = load(source, name)
    return fn, bad, dist.get_rank(), dist.get_world_size(), launch.current_device()


def call(fn, *args):
    """Call the student's function within the bound; returns (result, None) or (None, what went wrong)."""
    bound = BOUND_S or default_bound()
    printed = _Capped()

    def out_of_time(signum, frame):
        raise _OutOfTime()

    old = signal.signal(signal.SIGALRM, out_of_time)
    signal.setitimer(signal.ITIMER_REAL, bound)
    try:
        with contextlib.redirect_stdout(printed), contextlib.redirect_stderr(printed):
            return fn(*args), None
    except _OutOfTime:
        said = f" and printed {printed.total:,} characters meanwhile" if printed.total > PRINT_LIMIT else ""
        return None, (f"your function did not return within {bound:g} s{said}: does it loop forever, sleep, or "
                      f"wait for something that never comes?")
    except NotImplementedError:
        return None, "this exercise is not written yet (it still raises NotImplementedError)"
    except SystemExit as e:
        return None, f"your function called exit() (code {e.code}); return a value instead"
    except Exception as e:  # noqa: BLE001
        frames = [f for f in traceback.extract_tb(e.__traceback__) if f.filename.startswith("<your")]
        where = f" (line {frames[-1].lineno - PRELUDE.count(chr(10))} of your function)" if frames else ""
        if launch.looks_like_timeout(e) or "connection closed" in str(e).lower():
            last = f" (its {collectives._ordinal(len(collectives.LEDGER))}, {collectives.LEDGER[-1]})" \
                if collectives.LEDGER else ""
            return None, (f"your function waited in a collective{last} that another rank never joined{where} "
                          f"(every rank must make the same collectives in the same order)")
        said = f"your function raised {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}{where}"
        if isinstance(e, NameError):
            said += (" (the check runs your function alone: a helper, an import or a variable from another cell "
                     "does not exist there; define or import it inside the function)")
        return None, said
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


UNREADABLE_HINT = "return exactly what the exercise's text asks for: its type, its shape, its keys"


def unreadable(e: BaseException) -> Verdict:
    """The verdict when the check itself fails on what the student's function returned."""
    return Verdict(False, f"the check could not read what your function returned ({type(e).__name__}: "
                   f"{str(e).splitlines()[0] if str(e) else ''})", UNREADABLE_HINT)


def never_crashes(check):
    """``check`` that returns a failed Verdict instead of raising on whatever the student's function returned (a
    function that is not one still raises, with the one-line reason)."""
    @functools.wraps(check)
    def safe(fn, *args, **kwargs):
        source_of(fn)                       # not a function: a one-line TypeError
        default_bound()                     # a bad LADDER_EDU_CHECK_BOUND_S: a one-line ValueError
        try:
            return check(fn, *args, **kwargs)
        except Exception as e:  # noqa: BLE001 - a student's return value must never crash the notebook
            return unreadable(e)
    return safe


def _bounded(worker, bound_s: float, source: str, name: str, *args):
    """On each rank: set the bound for ``call``, run the check's worker (a collective of the check that times out
    after the student's function returned becomes a failed verdict), then compare every rank's collectives
    (``collectives.agree``): a mismatch is the verdict, whatever else went wrong."""
    global BOUND_S
    BOUND_S = bound_s
    collectives.LEDGER.clear()
    side = collectives.side_group(4 * bound_s + 30)
    try:
        verdict = worker(source, name, *args)
    except Exception as e:  # noqa: BLE001 - a check's own collective that another rank never joined, or a result
        if launch.looks_like_timeout(e) or "connection closed" in str(e).lower():     # the check cannot read
            verdict = Verdict(False, "a collective of the check waited for a rank that never joined it",
                              collectives.HINT)
        else:
            verdict = unreadable(e)
    if side is None:
        return verdict
    logs, passed = collectives.agree(side, verdict.passed)
    wrong = collectives.mismatch(logs)
    if wrong:
        return Verdict(False, wrong, collectives.HINT)
    if not verdict.passed and any(passed):
        verdict.details = verdict.details + [f"rank {', '.join(str(r) for r, ok in enumerate(passed) if ok)} "
                                             f"returned the right answer"]
    return verdict


def run_check(worker, fn, *args, world: int | None = None, bound_s: float | None = None,
              max_world: int | None = None) -> Verdict:
    """Send ``fn``'s source to ``world`` ranks (default: every GPU, else 2 CPU ranks; at most ``max_world``, the
    largest TP the check's model shards to), run ``worker(source, name, *args)`` on each, merge the verdicts: the
    first rank that failed speaks for all. Ends within about 2 x ``bound_s`` + start-up, whatever ``fn`` does."""
    source, name = source_of(fn)
    bound = bound_s or default_bound()
    world = world or min(max(2, launch.default_world_size()), max_world or 1 << 20)
    options = launch.LaunchOptions(timeout_s=bound + 5, deadline_s=2 * bound + 60)
    try:
        results = launch.run(_bounded, world, worker, bound, source, name, *args, options=options)
    except launch.CollectiveTimeout as e:
        if e.whole_job:
            return Verdict(False, f"the check did not finish within {options.deadline_s:g} s", "a rank is stuck "
                           "where no timer reaches it (in native code); restart the kernel if this repeats")
        return Verdict(False, f"rank {e.rank} waited more than {options.timeout_s:g} s for the other ranks after "
                       f"your function returned", "every rank must make the same collectives in the same order "
                       "(is a collective inside a branch on the rank?)")
    except launch.RankError as e:
        if e.exit_code is not None:
            how = f"killed by signal {-e.exit_code}" if e.exit_code < 0 else f"exit code {e.exit_code}"
            return Verdict(False, f"rank {e.rank} died while running your function ({how})",
                           "the rank's process ended: os._exit, a signal, or running out of memory")
        lines = str(e).splitlines()
        skipped = [ln.strip() for ln in lines if "skip a collective" in ln]
        return Verdict(False, f"a rank crashed outside your function: {lines[0]}",
                       skipped[0] if skipped else collectives.HINT)
    for r, v in enumerate(results):
        if not v.passed:
            own = [f"rank {r}: {d}" for d in v.details if not d.startswith("rank ")]
            v.details = (own or [f"seen on rank {r}"]) + [d for d in v.details if d.startswith("rank ")]
            return v
    return Verdict(True, f"checked on {world} ranks ({launch.default_backend(world)})")
