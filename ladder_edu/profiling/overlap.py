"""How much communication hides behind computation? An analysis of any torch.profiler (Chrome) trace.

Per rank, the trace's events become two sets of time intervals:

* **communication**: on a CPU/gloo trace, the ``gloo:<collective>`` annotations that gloo's own threads record
  (their full duration, async ones too; barriers excluded), or an emulated link's ``modeled:all_reduce`` events;
  on a GPU/NCCL trace, the ``nccl*`` kernels (or the graph-captured emulated rank's ``modeled:all_reduce`` ones);
* **compute**: on a CPU trace, ladder_edu's module regions (``L3.attn``, ``L3.mlp``, ``lm_head``) when present,
  else every top-level CPU op on a non-communication thread that is not itself a collective or a wait; on a GPU
  trace, every other kernel except synchronisation/spin kernels and memcpy/memset.

With U(S) the union of a set of intervals and |.| total length:

    compute = |U(compute)|,  comm = |U(comm)|,  overlapped = |U(compute) ∩ U(comm)|,
    exposed communication = comm - overlapped   (time the link works while compute does not)

What the *schedule* allows, independent of the machine: on a CPU trace each all-reduce has a start region
(``L3.attn:all_reduce``) and a wait region (``L3.attn:wait``) on the main thread. The compute between the end of
the start and the beginning of the wait is the **room** the program gives that all-reduce to hide behind:

    room = sum over all-reduces of |U(compute) ∩ [start ends, wait begins]|

Standard waits right after starting (room 0 by construction); ladder waits one module later (room = the next
module's compute). Room is fixed by program order; overlapped is what the hardware made of it (on a 2-core CPU
gloo's thread often gets no core until the main thread waits, so overlapped can be 0 where room is not).

Per layer, ladder_edu traces name where each all-reduce was started (``L3.attn:all_reduce``); the k-th collective
gloo runs is the k-th one started (gloo runs a process group's collectives in order), which attributes every
all-reduce to its module. Unlike HolisticTraceAnalysis (GPU kernels only, NaN on gloo traces), this works on both.
"""
from __future__ import annotations

import gzip
import json
import re
from dataclasses import asdict, dataclass, field

MODULE_RE = re.compile(r"^L(\d+)\.(attn\+mlp|attn|mlp)$")
# All-reduce labels: a module's output (standard, parallel, ladder, ISO), Kraken's per-layer sum of the splits
# ("L3.out") and its final joining linear ("conj", no layer).
START_RE = re.compile(r"^(?:L(\d+)\.(attn\+mlp|attn|mlp|out)|conj):all_reduce$")
WAIT_RE = re.compile(r"^(?:L(\d+)\.(attn\+mlp|attn|mlp|out)|conj):wait$")


def _layer(m: re.Match) -> int | None:
    return int(m.group(1)) if m.group(1) is not None else None
COMM_PREFIXES = ("gloo:", "modeled:")   # gloo's threads; the emulated link (perf/measure/emulated_profile.py)
NOT_COMPUTE = ("c10d::", "gloo:", "modeled:", "nccl:", "record_param_comms", "ProfilerStep", "aten::wait", "wait_tensor")
GPU_NOT_COMPUTE = ("sync", "spin", "memcpy", "memset")


@dataclass(frozen=True)
class Interval:
    start: float          # microseconds
    end: float
    name: str
    kind: str             # attn, mlp, attn+mlp, lm_head, compute, allreduce, wait
    layer: int | None = None


def load_trace(path) -> dict:
    """A Chrome trace (.json or .json.gz) as a dict with "traceEvents"."""
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "rt") as f:
        data = json.load(f)
    return data if isinstance(data, dict) else {"traceEvents": data}


def _x_events(trace: dict) -> list[dict]:
    return [e for e in trace["traceEvents"] if e.get("ph") == "X" and "dur" in e]


def union(intervals) -> list[tuple[float, float]]:
    """Merge overlapping (start, end) pairs; returns sorted disjoint intervals."""
    out: list[list[float]] = []
    for s, e in sorted((i.start, i.end) if isinstance(i, Interval) else i for i in intervals):
        if out and s <= out[-1][1]:
            out[-1][1] = max(out[-1][1], e)
        else:
            out.append([s, e])
    return [(s, e) for s, e in out]


def length(disjoint) -> float:
    return sum(e - s for s, e in disjoint)


def intersection(a, b) -> float:
    """Total length of the intersection of two sorted disjoint interval lists (a two-pointer sweep)."""
    i = j = 0
    total = 0.0
    while i < len(a) and j < len(b):
        lo, hi = max(a[i][0], b[j][0]), min(a[i][1], b[j][1])
        total += max(0.0, hi - lo)
        if a[i][1] < b[j][1]:
            i += 1
        else:
            j += 1
    return total


def classify(trace: dict) -> dict[str, list[Interval]]:
    """Split one rank's trace into compute, comm and wait intervals (see the module docstring)."""
    events = _x_events(trace)
    if any(e.get("cat") == "kernel" for e in events):
        kernels = [e for e in events if e.get("cat") == "kernel"]
        is_comm = lambda e: "nccl" in e["name"].lower() or e["name"].startswith(COMM_PREFIXES)   # noqa: E731
        comm = [Interval(e["ts"], e["ts"] + e["dur"], e["name"], "allreduce") for e in kernels if is_comm(e)]
        compute = [Interval(e["ts"], e["ts"] + e["dur"], e["name"], "compute") for e in kernels
                   if not is_comm(e) and not any(w in e["name"].lower() for w in GPU_NOT_COMPUTE)]
        return {"compute": compute, "comm": comm, "wait": [], "device": "gpu"}
    comm_events = [e for e in events if e.get("name", "").startswith(COMM_PREFIXES) and "barrier" not in e["name"]]
    comm = sorted((Interval(e["ts"], e["ts"] + e["dur"], e["name"], "allreduce") for e in comm_events),
                  key=lambda i: i.start)
    comm_tids = {e.get("tid") for e in comm_events}
    main = [e for e in events if e.get("tid") not in comm_tids]
    regions = [e for e in main if MODULE_RE.match(e["name"]) or e["name"] in ("lm_head", "conj")]
    if regions:
        compute = []
        for e in regions:
            m = MODULE_RE.match(e["name"])
            kind, layer = (m.group(2), int(m.group(1))) if m else (e["name"], None)
            compute.append(Interval(e["ts"], e["ts"] + e["dur"], e["name"], kind, layer))
    else:
        ops = [e for e in main if e.get("cat") == "cpu_op" and not e["name"].startswith(NOT_COMPUTE)
               and "wait" not in e["name"].lower()]
        compute = [Interval(s, e, "cpu ops", "compute") for s, e in union(
            (o["ts"], o["ts"] + o["dur"]) for o in ops)]
    waits = [Interval(e["ts"], e["ts"] + e["dur"], e["name"], "wait", _layer(WAIT_RE.match(e["name"])))
             for e in main if WAIT_RE.match(e["name"])]
    starts = sorted((e for e in main if START_RE.match(e["name"])), key=lambda e: e["ts"])
    if len(starts) == len(comm):     # k-th collective started <-> k-th collective gloo ran
        comm = [Interval(c.start, c.end, s["name"].split(":")[0], "allreduce", _layer(START_RE.match(s["name"])))
                for s, c in zip(starts, comm)]
    start_regions = [Interval(e["ts"], e["ts"] + e["dur"], e["name"], "start", _layer(START_RE.match(e["name"])))
                     for e in starts]
    return {"compute": compute, "comm": comm, "wait": waits, "start": start_regions, "device": "cpu",
            "in_flight": in_flight_windows(starts, waits)}


def in_flight_windows(starts: list[dict], waits: list[Interval]) -> list[tuple[float, float]]:
    """[start region ends, wait region begins] of each all-reduce: the k-th start of a module name pairs with the
    k-th wait of the same name (a module's all-reduces are waited in the order they were started)."""
    pending: dict[str, list[float]] = {}
    for s in sorted(starts, key=lambda e: e["ts"]):
        pending.setdefault(s["name"].split(":")[0], []).append(s["ts"] + s["dur"])
    windows = []
    for w in sorted(waits, key=lambda i: i.start):
        queue = pending.get(w.name.split(":")[0])
        if queue:
            windows.append((queue.pop(0), w.start))
    return windows


@dataclass
class Overlap:
    compute_us: float
    comm_us: float
    overlapped_us: float
    exposed_comm_us: float

    @classmethod
    def of(cls, compute, comm) -> "Overlap":
        cu, mu = union(compute), union(comm)
        both = intersection(cu, mu)
        return cls(length(cu), length(mu), both, length(mu) - both)


@dataclass
class RankReport:
    rank: int
    device: str
    steps: int
    window_us: float
    total: Overlap
    layers: list[dict] = field(default_factory=list)
    room_us: float | None = None     # compute inside the all-reduces' in-flight windows (CPU traces; None on GPU)

    def per_step(self) -> dict:
        out = {k: v / self.steps for k, v in asdict(self.total).items()}
        out["room_us"] = None if self.room_us is None else self.room_us / self.steps
        return out


def analyze(trace: dict, rank: int | None = None, steps: int | None = None) -> RankReport:
    """Overlap report of one rank's trace. ``steps`` (default: the trace's ProfilerStep count, else 1) divides
    the totals into per-step numbers."""
    parts = classify(trace)
    if rank is None:
        rank = int(trace.get("distributedInfo", {}).get("rank", 0))
    if steps is None:
        steps = max(1, sum(1 for e in _x_events(trace) if e["name"].startswith("ProfilerStep#")))
    everything = parts["compute"] + parts["comm"]
    window = (max(i.end for i in everything) - min(i.start for i in everything)) if everything else 0.0
    rep = RankReport(rank, parts["device"], steps, window, Overlap.of(parts["compute"], parts["comm"]))
    if "in_flight" in parts:
        rep.room_us = intersection(union(parts["compute"]), union(parts["in_flight"]))
    layers = sorted({i.layer for i in parts["compute"] + parts["comm"] if i.layer is not None})
    compute_all = parts["compute"]
    for layer in layers:
        own_comm = [i for i in parts["comm"] if i.layer == layer]
        o = Overlap.of(compute_all, own_comm)
        rep.layers.append({"layer": layer,
                           "compute_us": length(union(i for i in compute_all if i.layer == layer)),
                           "comm_us": o.comm_us, "overlapped_us": o.overlapped_us,
                           "exposed_comm_us": o.exposed_comm_us})
    return rep


def report_table(reports: dict[str, list[RankReport]]) -> str:
    """A text table: per variant and rank, per-step compute, communication, room, overlapped and exposed (ms)."""
    lines = [f"{'variant':12s} {'rank':>4s} {'compute':>9s} {'comm':>9s} {'room':>9s} {'overlap':>9s} "
             f"{'exposed':>9s}   (ms per step)"]
    for variant, reps in reports.items():
        for r in reps:
            p = r.per_step()
            room = "-" if p["room_us"] is None else f"{p['room_us'] / 1e3:.3f}"
            lines.append(f"{variant:12s} {r.rank:4d} {p['compute_us'] / 1e3:9.3f} {p['comm_us'] / 1e3:9.3f} "
                         f"{room:>9s} {p['overlapped_us'] / 1e3:9.3f} {p['exposed_comm_us'] / 1e3:9.3f}")
    return "\n".join(lines)
