"""The critical path of one forward pass: a compute lane, a communication lane, and what overlap costs.

A forward pass is a sequence of modules j = 0, 1, ... with compute time C_j, all-reduce time A_j (0: none) and a
lag (``models/model.py``'s due rule): module j may start when the compute lane is free and every all-reduce of
modules <= j-1-lag has finished. All-reduces run one at a time, in order, each after its module's compute.

While an all-reduce is in flight, compute progresses at rate (1 - s) (``interference``: the NCCL kernel holds
SMs and HBM bandwidth). So a module of work C that starts with w seconds of in-flight communication left ends after
C / (1 - s) if that fits in w, else after w + (C - w (1 - s)) = C + s w. With s = 0 it is the idealised
two-lane schedule that the notebooks draw (``simulate``): the one simulator of the due rule in this package.

The architectures differ only in each module's lag and all-reduce:

* standard (lag 0): module i needs AllReduce(i-1)          -> compute and communication alternate;
* ladder   (lag 1): module i needs AllReduce(i-2)          -> AllReduce(i-1) runs under module i's compute;
* parallel:          attention+MLP are one module per layer -> half as many all-reduces, none overlapped;
* upper bound:       no all-reduce at all (a speed ceiling, not a valid model);
* iso (a prefill):   the standard model, the prompt in two chunks of half the work; each chunk's module needs its
                     own chunk's previous all-reduce (lag 1 in the interleaved sequence), so chunk 1's module runs
                     while chunk 0's all-reduce does (the lower bound of ISO's gain: later chunks cost more);
* kraken:            one all-reduce per layer, after its MLP; only the next layer's MLP needs it (lag 0 for the
                     MLP, no wait for the attention), so it runs under the next layer's attention.

With compute time c and all-reduce time a per module, n modules: standard takes n(c + a); ladder about
n max(c, a) + min(c, a) (only the last all-reduce cannot hide).

Layers repeat, so the lanes reach a periodic state after a layer or two: ``run`` simulates a run of identical
layers until the per-layer advance repeats, then moves the clocks on by that advance for the remaining layers
(exact once periodic, and fast enough to fit constants with).
"""
from __future__ import annotations

from dataclasses import dataclass, field

from ...models.registry import ALL_VARIANTS, BASELINE, get_variant

MAX_LAG = 8
NO_WAIT = MAX_LAG + 1    # a lag past every remembered all-reduce: the module waits for none


@dataclass(frozen=True)
class Module:
    compute: float       # seconds of compute on this rank (no interference)
    comm: float          # seconds of its all-reduce (0: none)
    lag: int = 0         # 0: needs every earlier all-reduce; k: may run before the k newest have finished
    name: str = ""       # for the drawn schedule: "L0.attn", ...
    kind: str = ""       # "attn", "mlp", "attn+mlp"


@dataclass(frozen=True)
class Event:
    lane: str          # "compute" or "comm"
    name: str          # e.g. "L0.attn", "AR L0.attn"
    kind: str          # "attn", "mlp", "attn+mlp" or "allreduce"
    start: float
    end: float


@dataclass
class Lanes:
    """Clocks of the two lanes and the end times of the latest all-reduces."""
    compute_free: float = 0.0
    comm_free: float = 0.0
    ar_ends: tuple = ()          # end times of the latest all-reduces, newest first
    compute_work: float = 0.0    # sum of C (for the breakdown)
    stretch: float = 0.0         # extra compute time caused by interference
    comm_work: float = 0.0       # sum of A
    events: list | None = field(default=None, repr=False)    # a list: ``step`` records every Event in it

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
    if lanes.events is not None:
        lanes.events.append(Event("compute", m.name, m.kind, start, end))
    if m.comm > 0:
        cstart = max(end, lanes.comm_free)
        lanes.comm_free = cstart + m.comm
        lanes.comm_work += m.comm
        lanes.ar_ends = (lanes.comm_free,) + lanes.ar_ends[:MAX_LAG]
        if lanes.events is not None:
            lanes.events.append(Event("comm", f"AR {m.name}", "allreduce", cstart, lanes.comm_free))


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


def modules(variant: str, n_layers: int, t_attn: float, t_mlp: float, t_comm: float,
            ladder_layers=None) -> list[Module]:
    """The module sequence of one forward pass of ``variant`` (every all-reduce ``t_comm``). For "ladder",
    ``ladder_layers`` (a set of layer indices; None: all) says which layers have lag 1: with compute at least as
    long as an all-reduce, each ladder layer i > 0 hides two all-reduces wherever it sits (the previous module's
    and its attention's; its MLP's only when layer i+1 is ladder too, and that is then counted for i+1)."""
    v = get_variant(variant)
    comm = t_comm if v.all_reduces else 0.0
    if v.layout == "fused":
        return [Module(t_attn + t_mlp, comm, v.lag, f"L{i}.attn+mlp", "attn+mlp") for i in range(n_layers)]
    if v.layout == "chunked":
        return [Module(c / 2, comm / 2, 1, f"L{i}.{kind}[{chunk}]", kind) for i in range(n_layers)
                for kind, c in (("attn", t_attn), ("mlp", t_mlp)) for chunk in (0, 1)]
    if v.layout == "subsets":
        return [m for i in range(n_layers) for m in (Module(t_attn, 0.0, NO_WAIT, f"L{i}.attn", "attn"),
                                                     Module(t_mlp, comm, 0, f"L{i}.mlp", "mlp"))]
    lagged = set(range(n_layers) if ladder_layers is None else ladder_layers) if v.lag else set()
    return [Module(c, comm, v.lag if i in lagged else 0, f"L{i}.{kind}", kind) for i in range(n_layers)
            for kind, c in (("attn", t_attn), ("mlp", t_mlp))]


def simulate(variant: str, n_layers: int, t_attn: float, t_mlp: float, t_comm: float,
             ladder_layers=None) -> list[Event]:
    """The events of one forward pass with no interference (times in any unit): the idealised schedule."""
    lanes = Lanes(events=[])
    for m in modules(variant, n_layers, t_attn, t_mlp, t_comm, ladder_layers):
        step(lanes, m, 0.0)
    return lanes.events


def total_time(events: list[Event]) -> float:
    return max(e.end for e in events)


def speedups(n_layers: int, t_attn: float, t_mlp: float, t_comm: float, variants=ALL_VARIANTS) -> dict[str, float]:
    """Idealised speedup of each variant over standard."""
    base = total_time(simulate(BASELINE, n_layers, t_attn, t_mlp, t_comm))
    return {v: base / total_time(simulate(v, n_layers, t_attn, t_mlp, t_comm)) for v in variants}
