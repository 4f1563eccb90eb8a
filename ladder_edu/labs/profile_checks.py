"""Lab 4: read a profile: how much communication did compute not hide?"""
from __future__ import annotations

import tempfile

from ..models.config import get_config
from ..profiling.overlap import classify, intersection, length, load_trace, union
from .runner import Verdict, call, load


def reference_exposed(compute: list[tuple[float, float]], comm: list[tuple[float, float]]) -> float:
    """Communication time during which no compute ran: |union(comm)| - |union(comm) & union(compute)|."""
    return length(union(comm)) - intersection(union(comm), union(compute))


def traces(tp: int = 2, variants=("standard", "ladder"), steps: int = 2) -> dict[str, list[dict]]:
    """Profile ``variants`` of the tiny model on ``tp`` real ranks; {variant: [per-rank trace]}."""
    from ..profiling.trace import profile
    out = tempfile.mkdtemp(prefix="ladder_edu_lab4_")
    paths = profile(get_config("tiny"), list(variants), tp, "decode", out, steps=steps)
    return {v: [load_trace(p) for p in ps] for v, ps in paths.items()}


def intervals(trace: dict) -> tuple[list[tuple[float, float]], list[tuple[float, float]]]:
    """(compute, comm) intervals of one rank's trace, in microseconds."""
    parts = classify(trace)
    return [(i.start, i.end) for i in parts["compute"]], [(i.start, i.end) for i in parts["comm"]]


def check_exposed_communication(fn, profiled: dict[str, list[dict]]) -> dict:
    """``fn(compute, comm)`` -> microseconds of communication not overlapped by compute, checked on every rank's
    trace in ``profiled`` (from ``traces()``) and on small cases with known answers. Returns {"verdict", "rows"}."""
    import inspect
    import textwrap
    fn2, problem = load(textwrap.dedent(inspect.getsource(fn)), fn.__name__)
    cases = [([(0, 10)], [(5, 15)], 5.0), ([(0, 10)], [(2, 4), (3, 6)], 0.0), ([], [(0, 3), (2, 5)], 5.0),
             ([(0, 1), (4, 5)], [(0, 5)], 3.0)]
    rows = []
    if problem:
        return {"verdict": Verdict(False, problem), "rows": rows}
    for compute, comm, want in cases:
        got, problem = call(fn2, compute, comm)
        if problem:
            return {"verdict": Verdict(False, problem), "rows": rows}
        if abs(float(got) - want) > 1e-6:
            total = sum(e - s for s, e in comm)
            hint = ("you counted all communication: subtract the part during which compute ran"
                    if abs(float(got) - total) < 1e-6 else
                    "merge overlapping communication intervals first (union), then subtract their overlap with "
                    "the union of compute intervals")
            return {"verdict": Verdict(False, f"compute={compute}, comm={comm}: you said {got}, the answer is "
                                       f"{want}", hint), "rows": rows}
    for variant, ranks in profiled.items():
        for r, trace in enumerate(ranks):
            compute, comm = intervals(trace)
            got, problem = call(fn2, compute, comm)
            want = reference_exposed(compute, comm)
            if problem or abs(float(got) - want) > 1e-3 * max(1.0, want):
                return {"verdict": Verdict(False, problem or f"{variant} rank {r}: you said {got:.1f} us, the "
                                           f"answer is {want:.1f} us"), "rows": rows}
            rows.append({"variant": variant, "rank": r, "comm_us": length(union(comm)), "exposed_us": want})
    return {"verdict": Verdict(True, f"checked on {sum(len(v) for v in profiled.values())} real traces"),
            "rows": rows}
