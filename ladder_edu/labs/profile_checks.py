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


def room_inputs(trace: dict):
    """(compute intervals, starts [(module, start region ends)], waits [(module, wait region begins)]) of a rank."""
    from ..profiling.overlap import START_RE, _x_events
    parts = classify(trace)
    main_tids = {e.get("tid") for e in _x_events(trace) if START_RE.match(e.get("name", ""))}
    starts = sorted((e["name"].split(":")[0], e["ts"] + e["dur"]) for e in _x_events(trace)
                    if e.get("tid") in main_tids and START_RE.match(e.get("name", "")))
    starts.sort(key=lambda s: s[1])
    waits = sorted(((w.name.split(":")[0], w.start) for w in parts["wait"]), key=lambda w: w[1])
    return [(i.start, i.end) for i in parts["compute"]], starts, waits


def reference_room(compute, starts, waits) -> float:
    pending: dict[str, list[float]] = {}
    for name, t in sorted(starts, key=lambda s: s[1]):
        pending.setdefault(name, []).append(t)
    windows = [(pending[name].pop(0), t) for name, t in sorted(waits, key=lambda w: w[1]) if pending.get(name)]
    return intersection(union(compute), union(windows))


def _room_any_wait(compute, starts, waits) -> float:
    """The misconception: a start pairs with the next wait, whatever module it belongs to."""
    ends = sorted(t for _, t in waits)
    windows = []
    for _, t in sorted(starts, key=lambda s: s[1]):
        nxt = [w for w in ends if w >= t]
        if nxt:
            windows.append((t, nxt[0]))
    return intersection(union(compute), union(windows))


def check_room(fn, profiled: dict[str, list[dict]]) -> Verdict:
    """``fn(compute, starts, waits)`` -> microseconds of compute inside the all-reduces' in-flight windows (from
    the end of an all-reduce's start region to the beginning of its wait region; the k-th start of a module pairs
    with its k-th wait). Checked on a hand case and on every rank of the real traces in ``profiled``."""
    import inspect
    import textwrap
    fn2, problem = load(textwrap.dedent(inspect.getsource(fn)), fn.__name__)
    if problem:
        return Verdict(False, problem)
    hand = ([(0, 4), (5, 9), (10, 14)], [("L0.attn", 4), ("L0.mlp", 9)], [("L0.attn", 9.5), ("L0.mlp", 14.5)])
    cases = [("a hand case", hand)] + [(f"{v} rank {r}", room_inputs(t)) for v, ts in profiled.items()
                                       for r, t in enumerate(ts)]
    for what, (compute, starts, waits) in cases:
        got, problem = call(fn2, compute, starts, waits)
        if problem:
            return Verdict(False, problem)
        want = reference_room(compute, starts, waits)
        if not isinstance(got, (int, float)) or abs(got - want) > 1e-3 * max(1.0, want):
            hint = "merge the windows and the compute intervals, then measure their intersection"
            if isinstance(got, (int, float)) and abs(got - _room_any_wait(compute, starts, waits)) < 1e-3 * max(
                    1.0, want) and abs(want - _room_any_wait(compute, starts, waits)) > 1e-6:
                hint = "a start pairs with the wait of the *same* module (ladder waits one module later)"
            elif isinstance(got, (int, float)) and abs(got - length(union(compute))) < 1e-3 * max(1.0, want):
                hint = "you counted all compute: only compute inside a window could hide an all-reduce"
            return Verdict(False, f"{what}: you said {got}, the room is {want:.1f} us", hint)
    return Verdict(True, f"checked on a hand case and {len(cases) - 1} real traces")


def check_intervals_from_trace(fn, profiled: dict[str, list[dict]]) -> Verdict:
    """``fn(trace)`` -> (compute, comm): the (start, end) intervals of one rank's raw CPU trace, compared with the
    package's reading (``profiling.overlap.classify``) on every rank of ``profiled``."""
    import inspect
    import textwrap
    fn2, problem = load(textwrap.dedent(inspect.getsource(fn)), fn.__name__)
    if problem:
        return Verdict(False, problem)
    n = 0
    for variant, ranks in profiled.items():
        for r, trace in enumerate(ranks):
            want_compute, want_comm = intervals(trace)
            got, problem = call(fn2, trace)
            if problem:
                return Verdict(False, f"{variant} rank {r}: {problem}")
            try:
                compute, comm = got
                compute, comm = sorted(map(tuple, compute)), sorted(map(tuple, comm))
            except (TypeError, ValueError):
                return Verdict(False, f"returned {type(got).__name__}, expected (compute, comm): two lists of "
                               f"(start, end)")
            if sorted(want_comm) != comm:
                hint = ("a collective's start region on the main thread is not the collective: the communication "
                        "threads' gloo events hold its whole duration")
                if len(comm) > len(want_comm):
                    hint = "barriers are gloo events too, but not the model's communication"
                return Verdict(False, f"{variant} rank {r}: {len(comm)} communication intervals, expected "
                               f"{len(want_comm)}", hint)
            if sorted(want_compute) != compute:
                hint = "compute is the model's module regions (L0.attn, L0.mlp, ..., lm_head) on the main thread"
                if len(compute) > len(want_compute):
                    hint = ("the regions ending in :all_reduce or :wait are communication bookkeeping, not the "
                            "module's compute")
                return Verdict(False, f"{variant} rank {r}: {len(compute)} compute intervals, expected "
                               f"{len(want_compute)}", hint)
            n += 1
    return Verdict(True, f"checked on {n} real traces")
