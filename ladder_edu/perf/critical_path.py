"""The critical path of one forward pass: a compute lane, a communication lane, and what overlap costs.

A forward pass is a sequence of modules j = 0, 1, ... with compute time C_j, all-reduce time A_j (0: none) and a
lag (``models/model.py``'s due rule): module j may start when the compute lane is free and every all-reduce of
modules <= j-1-lag has finished. All-reduces run one at a time, in order, each after its module's compute.

While an all-reduce is in flight, compute progresses at rate (1 - s) (``interference``: the NCCL kernel holds
SMs and HBM bandwidth). So a module of work C that starts with w seconds of in-flight communication left ends after
C / (1 - s) if that fits in w, else after w + (C - w (1 - s)) = C + s w. With s = 0 this is exactly
``schedule.simulate``'s idealised two-lane schedule (tested).

Layers repeat, so the lanes reach a periodic state after a layer or two: ``run`` simulates a run of identical
layers until the per-layer advance repeats, then moves the clocks on by that advance for the remaining layers
(exact once periodic, and fast enough to fit constants with).
"""
from __future__ import annotations

from dataclasses import dataclass


MAX_LAG = 8


@dataclass(frozen=True)
class Module:
    compute: float       # seconds of compute on this rank (no interference)
    comm: float          # seconds of its all-reduce (0: none)
    lag: int = 0         # 0: needs every earlier all-reduce; k: may run before the k newest have finished


@dataclass
class Lanes:
    """Clocks of the two lanes and the end times of the latest all-reduces."""
    compute_free: float = 0.0
    comm_free: float = 0.0
    ar_ends: tuple = ()          # end times of the latest all-reduces, newest first
    compute_work: float = 0.0    # sum of C (for the breakdown)
    stretch: float = 0.0         # extra compute time caused by interference
    comm_work: float = 0.0       # sum of A

    def shift(self, dt: float, layers: int, work: tuple[float, float, float]):
        self.compute_free += dt
        self.comm_free += dt
        self.ar_ends = tuple(t + dt for t in self.ar_ends)
        self.compute_work += layers * work[0]
        self.stretch += layers * work[1]
        self.comm_work += layers * work[2]


def step(lanes: Lanes, m: Module, s: float) -> None:
    """Advance the lanes by one module."""
    ends = lanes.ar_ends + (0.0,) * (m.lag + 2)
    need = ends[m.lag]                                  # the newest all-reduce this module must see
    start = max(lanes.compute_free, need)
    inflight = max(0.0, ends[0] - start) if s > 0 else 0.0
    if s < 1 and m.compute <= inflight * (1 - s):
        end = start + m.compute / (1 - s)
    else:
        end = start + m.compute + s * inflight
    lanes.stretch += (end - start) - m.compute
    lanes.compute_work += m.compute
    lanes.compute_free = end
    if m.comm > 0:
        cstart = max(end, lanes.comm_free)
        lanes.comm_free = cstart + m.comm
        lanes.comm_work += m.comm
        lanes.ar_ends = (lanes.comm_free,) + lanes.ar_ends[:MAX_LAG]


def run(lanes: Lanes, layer: list[Module], count: int, s: float) -> None:
    """Advance by ``count`` identical layers, jumping ahead once the per-layer advance repeats."""
    prev_adv, done = None, 0
    while done < count:
        before = (lanes.compute_free, lanes.compute_work, lanes.stretch, lanes.comm_work, lanes.ar_ends)
        for m in layer:
            step(lanes, m, s)
        done += 1
        adv = lanes.compute_free - before[0]
        rel = tuple(round(t - lanes.compute_free, 12) for t in lanes.ar_ends) + \
            (round(lanes.comm_free - lanes.compute_free, 12),)
        if prev_adv is not None and abs(adv - prev_adv[0]) < 1e-12 and rel == prev_adv[1]:
            rest = count - done
            lanes.shift(rest * adv, rest, (lanes.compute_work - before[1], lanes.stretch - before[2],
                                           lanes.comm_work - before[3]))
            return
        prev_adv = (adv, rel)


def finish(lanes: Lanes) -> float:
    """The time when both lanes are done (the last all-reduces cannot hide: the head needs them)."""
    return max(lanes.compute_free, lanes.comm_free)
