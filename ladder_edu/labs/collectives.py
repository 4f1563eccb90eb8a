"""Every rank must make the same collectives in the same order: what each rank of a check made, and the verdict
when they disagree.

A student's function sees ``dist`` as a :class:`CountingDist`: ``torch.distributed`` itself, except that each
collective it calls is first written in this rank's :data:`LEDGER` (checks whose student code calls a collective
through a function the check passes in, such as lab 2's ``reduce``, record it there too). After a check's worker
returns on a rank, :func:`agree` all-gathers every rank's ledger on a side group (gloo, made before the student's code
ran, so a student's unmatched collective on the main group cannot pair with it). A rank that skipped a collective
returns early and waits there; the rank it left behind waits in that collective until the group's timeout (the
check's bound plus a few seconds), then arrives too. Both ledgers then say which rank made which collectives:

    rank 1 made 1 collective (all_reduce) where rank 0 made 2 (all_reduce, all_reduce): rank 0's 2nd, all_reduce,
    waited for a partner that never came

which replaces whatever raw error the waiting rank saw (gloo's "Connection closed by peer", a timeout).
"""
from __future__ import annotations

import datetime

import torch.distributed as dist

COLLECTIVES = frozenset({
    "all_reduce", "all_gather", "all_gather_into_tensor", "reduce_scatter", "reduce_scatter_tensor", "broadcast",
    "barrier", "all_to_all", "all_to_all_single", "reduce", "gather", "scatter", "all_gather_object",
    "broadcast_object_list", "send", "recv", "isend", "irecv"})
LEDGER: list[str] = []
"""The collectives this rank's student code made in the current check, in order."""


class CountingDist:
    """``torch.distributed`` for a student's code, recording each collective call in ``LEDGER``."""

    def __getattr__(self, name):
        attr = getattr(dist, name)
        if name not in COLLECTIVES:
            return attr

        def recorded(*args, **kwargs):
            LEDGER.append(name)
            return attr(*args, **kwargs)
        return recorded


def side_group(timeout_s: float):
    """A gloo group over every rank for the agreement (None when no process group is running)."""
    if not dist.is_available() or not dist.is_initialized():
        return None
    return dist.new_group(backend="gloo", timeout=datetime.timedelta(seconds=timeout_s))


def _ordinal(n: int) -> str:
    return f"{n}{'th' if 10 <= n % 100 <= 20 else {1: 'st', 2: 'nd', 3: 'rd'}.get(n % 10, 'th')}"


def _made(rank: int, log: list[str]) -> str:
    names = ", ".join(log[:6]) + (", ..." if len(log) > 6 else "")
    return f"rank {rank} made {len(log)} collective{'s' if len(log) != 1 else ''}" + (f" ({names})" if log else "")


def mismatch(logs: list[list[str]]) -> str | None:
    """A sentence naming how the ranks' collectives differ (count, or order), or None when they agree."""
    if all(log == logs[0] for log in logs):
        return None
    short = min(range(len(logs)), key=lambda r: len(logs[r]))
    long = max(range(len(logs)), key=lambda r: len(logs[r]))
    if len(logs[short]) != len(logs[long]):
        k = len(logs[short])
        return (f"{_made(short, logs[short])} where {_made(long, logs[long])}: rank {long}'s {_ordinal(k + 1)}, "
                f"{logs[long][k]}, waited for a partner that never came")
    k = next(i for i in range(len(logs[0])) if any(log[i] != logs[0][i] for log in logs))
    other = next(r for r in range(len(logs)) if logs[r][k] != logs[0][k])
    return (f"the ranks' {_ordinal(k + 1)} collectives differ: rank 0 called {logs[0][k]} where rank {other} "
            f"called {logs[other][k]}")


HINT = ("every rank must make the same collectives in the same order: is one inside a branch on the rank, after a "
        "return that only some ranks reach, or in a loop whose length depends on the rank?")


def agree(group, passed: bool) -> tuple[list[list[str]], list[bool]]:
    """All-gather (ledger, passed) over ``group``; returns every rank's ledger and verdict."""
    out: list = [None] * dist.get_world_size()
    dist.all_gather_object(out, (list(LEDGER), passed), group=group)
    return [o[0] for o in out], [o[1] for o in out]
