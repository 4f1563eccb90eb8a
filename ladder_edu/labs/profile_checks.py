"""Lab 4: read a profile: how much communication did compute not hide?"""
from __future__ import annotations

import tempfile

from ..models.config import get_config
from ..profiling.overlap import Interval, classify, in_flight_windows, intersection, length, load_trace, union
from .describe import as_number, what
from .runner import Misconception, Verdict, call, diagnose, failed, load_student


def reference_exposed(compute: list[tuple[float, float]], comm: list[tuple[float, float]]) -> float:
    """Communication time during which no compute ran: |union(comm)| - |union(comm) & union(compute)|."""
    return length(union(comm)) - intersection(union(comm), union(compute))


def traces(tp: int = 2, variants=("standard", "ladder"), steps: int = 2) -> dict[str, list[dict]]:
    """Profile ``variants`` of the tiny model on ``tp`` real CPU ranks (gloo, GPUs or not: the lab reads CPU traces);
    {variant: [per-rank trace]} (the trace files are read and their folder removed)."""
    from ..profiling.trace import profile
    from ..tp.launch import LaunchOptions
    with tempfile.TemporaryDirectory(prefix="ladder_edu_lab4_") as out:    # CPU ranks on gloo: the traces the
        paths = profile(get_config("tiny"), list(variants), tp, "decode", out, steps=steps,   # lab's text reads
                        options=LaunchOptions(backend="gloo", timeout_s=120.0))
        return {v: [load_trace(p) for p in ps] for v, ps in paths.items()}


def intervals(trace: dict) -> tuple[list[tuple[float, float]], list[tuple[float, float]]]:
    """(compute, comm) intervals of one rank's trace, in microseconds."""
    parts = classify(trace)
    return [(i.start, i.end) for i in parts["compute"]], [(i.start, i.end) for i in parts["comm"]]


EXPOSED_MISTAKES = (       # the overlap mistake first: with no compute it also equals "all communication"
    Misconception(lambda compute, comm: sum(e - s for s, e in comm) - intersection(union(comm), union(compute)),
                  "you counted overlapping communication twice",
                  "two all-reduces in flight at once are one stretch of busy link: merge the communication intervals "
                  "before measuring, as you merge the compute ones"),
    Misconception(lambda compute, comm: sum(e - s for s, e in comm), "you counted all communication",
                  "subtract the part during which compute ran"),
)


def check_exposed_communication(fn, profiled: dict[str, list[dict]]) -> Verdict:
    """``fn(compute, comm)`` -> microseconds of communication not overlapped by compute, checked on small cases
    with known answers and on every rank's trace in ``profiled`` (from ``traces()``). The verdict's ``rows``: per
    variant and rank, the communication and the exposed part."""
    fn2, bad = load_student(fn)
    if bad:
        return bad
    cases = [([(0, 10)], [(5, 15)]), ([(0, 10)], [(2, 4), (3, 6)]), ([], [(0, 3), (2, 5)]), ([(0, 1), (4, 5)], [(0, 5)])]
    cases += [(*intervals(trace), f"{variant} rank {r}") for variant, ranks in profiled.items()
              for r, trace in enumerate(ranks)]
    rows = []
    for compute, comm, *where in cases:
        got, problem = call(fn2, compute, comm)
        if problem:
            return failed(problem)
        want = reference_exposed(compute, comm)
        if as_number(got) is None:
            return Verdict(False, f"returned {what(got)}, expected one number: microseconds of exposed "
                           f"communication")
        got = as_number(got)
        close = lambda a, b: abs(float(a) - b) <= 1e-3 * max(1.0, abs(b))   # noqa: E731
        if not close(got, want):
            said = where[0] if where else f"compute={compute}, comm={comm}"
            m = diagnose(got, (compute, comm), EXPOSED_MISTAKES, close)
            return Verdict(False, f"{said}: {m.problem + ': ' if m else ''}you said {float(got):.1f} us, the answer "
                           f"is {want:.1f} us", m.hint if m else "communication not overlapped by compute: "
                           "the length of the merged communication minus its overlap with the merged compute")
        if where:
            variant, rank = where[0].rsplit(" rank ", 1)
            rows.append({"variant": variant, "rank": int(rank), "comm_us": length(union(comm)), "exposed_us": want})
    return Verdict(True, f"checked on {len(rows)} real traces", rows=rows)


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
    """Compute inside the in-flight windows (``overlap.in_flight_windows``, on the lab's (name, time) pairs)."""
    windows = in_flight_windows([{"name": name, "ts": t, "dur": 0.0} for name, t in starts],
                                [Interval(t, t, name, "wait") for name, t in waits])
    return intersection(union(compute), union(windows))


def _room_any_wait(compute, starts, waits) -> float:
    """A misconception: a start pairs with the next wait, whatever module it belongs to."""
    ends = sorted(t for _, t in waits)
    windows = []
    for _, t in sorted(starts, key=lambda s: s[1]):
        nxt = [w for w in ends if w >= t]
        if nxt:
            windows.append((t, nxt[0]))
    return intersection(union(compute), union(windows))


ROOM_MISTAKES = (
    Misconception(_room_any_wait, "a start paired with the next wait of any module",
                  "a start pairs with the wait of the *same* module (ladder waits one module later)"),
    Misconception(lambda compute, starts, waits: length(union(compute)), "all compute counted",
                  "you counted all compute: only compute inside a window could hide an all-reduce"),
)


def check_room(fn, profiled: dict[str, list[dict]]) -> Verdict:
    """``fn(compute, starts, waits)`` -> microseconds of compute inside the all-reduces' in-flight windows (from
    the end of an all-reduce's start region to the beginning of its wait region; the k-th start of a module pairs
    with its k-th wait). Checked on a hand case and on every rank of the real traces in ``profiled``."""
    fn2, bad = load_student(fn)
    if bad:
        return bad
    hand = ([(0, 4), (5, 9), (10, 14)], [("L0.attn", 4), ("L0.mlp", 9)], [("L0.attn", 9.5), ("L0.mlp", 14.5)])
    cases = [("a hand case", hand)] + [(f"{v} rank {r}", room_inputs(t)) for v, ts in profiled.items()
                                       for r, t in enumerate(ts)]
    for what, (compute, starts, waits) in cases:
        got, problem = call(fn2, compute, starts, waits)
        if problem:
            return Verdict(False, problem)
        want = reference_room(compute, starts, waits)
        close = lambda a, b: isinstance(a, (int, float)) and abs(a - b) <= 1e-3 * max(1.0, want)   # noqa: E731
        if not close(got, want):
            m = diagnose(got, (compute, starts, waits), ROOM_MISTAKES, close)
            return Verdict(False, f"{what}: you said {got}, the room is {want:.1f} us",
                           m.hint if m else "merge the windows and the compute intervals, then measure their "
                           "intersection")
    return Verdict(True, f"checked on a hand case and {len(cases) - 1} real traces")


def check_intervals_from_trace(fn, profiled: dict[str, list[dict]]) -> Verdict:
    """``fn(trace)`` -> (compute, comm): the (start, end) intervals of one rank's raw CPU trace, compared with the
    package's reading (``profiling.overlap.classify``) on every rank of ``profiled``."""
    fn2, bad = load_student(fn)
    if bad:
        return bad
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
            if len(comm) == len(want_comm) and sorted(want_comm) != comm:
                return Verdict(False, f"{variant} rank {r}: the right number of communication intervals ("
                               f"{len(comm)}), the wrong values", "each interval is (start, end) in microseconds: "
                               "an event's start and its start plus its duration")
            if len(compute) == len(want_compute) and sorted(want_compute) != compute:
                return Verdict(False, f"{variant} rank {r}: the right number of compute intervals ("
                               f"{len(compute)}), the wrong values", "each interval is (start, end) in "
                               "microseconds: an event's start and its start plus its duration")
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
