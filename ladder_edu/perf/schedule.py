"""An idealised schedule: when does each module compute, and when does its all-reduce run?

Two resources work in parallel: the *compute* lane (one module at a time) and the *communication* lane (one
collective at a time, in order). Module i may start computing when the compute lane is free and every all-reduce
it depends on has finished. The architectures differ only in that dependency (the same ``lag`` as in ``model.py``):

* standard (lag 0): module i needs AllReduce(i-1)          -> compute and communication alternate;
* ladder   (lag 1): module i needs AllReduce(i-2)          -> AllReduce(i-1) runs under module i's compute;
* parallel:          attention+MLP are one module per layer -> half as many all-reduces, none overlapped;
* upper bound:       no all-reduce at all (a speed ceiling, not a valid model);
* iso (a prefill):   the standard model, the prompt in two chunks of half the work; chunk 1's module runs while
                     chunk 0's all-reduce does (the lower bound of ISO's gain: later chunks cost more attention);
* kraken:            one all-reduce per layer, after its MLP; only the next layer's MLP needs it, so it runs
                     under the next layer's attention (times are per rank: Kraken's sub-layer, see perfmodel).

With compute time c and all-reduce time a per module, n modules: standard takes n(c + a); ladder about
n max(c, a) + min(c, a) (only the last all-reduce cannot hide). The pictures in the notebooks are drawn from this.
"""
from __future__ import annotations

from dataclasses import dataclass

from ..models.config import ALL_VARIANTS, PREFILL_VARIANTS


@dataclass(frozen=True)
class Event:
    lane: str          # "compute" or "comm"
    name: str          # e.g. "L0.attn", "AR L0.attn"
    kind: str          # "attn", "mlp", "attn+mlp" or "allreduce"
    start: float
    end: float


def simulate(variant: str, n_layers: int, t_attn: float, t_mlp: float, t_comm: float) -> list[Event]:
    """The events of one forward pass under the idealised two-lane model (times in any unit)."""
    if variant not in PREFILL_VARIANTS:
        raise ValueError(f"unknown variant {variant!r}; valid choices: {', '.join(PREFILL_VARIANTS)}")
    if variant == "iso":
        return _iso(n_layers, t_attn, t_mlp, t_comm)
    if variant == "parallel":
        modules = [(f"L{i}.attn+mlp", "attn+mlp", t_attn + t_mlp) for i in range(n_layers)]
    else:
        modules = [m for i in range(n_layers) for m in ((f"L{i}.attn", "attn", t_attn), (f"L{i}.mlp", "mlp", t_mlp))]
    lag = 1 if variant == "ladder" else 0
    comm = 0.0 if variant == "upper_bound" else t_comm
    events, comm_end, compute_free, comm_free = [], {}, 0.0, 0.0
    for i, (name, kind, c) in enumerate(modules):
        need = i - 1 - lag                                  # the newest all-reduce this module must see
        if variant == "kraken":                             # layer l's MLP needs layer l-1's all-reduce
            need = i - 2 if kind == "mlp" else -1
        start = max(compute_free, comm_end.get(need, 0.0))
        events.append(Event("compute", name, kind, start, start + c))
        compute_free = start + c
        if comm and (variant != "kraken" or kind == "mlp"):
            cstart = max(compute_free, comm_free)
            comm_free = comm_end[i] = cstart + comm
            events.append(Event("comm", f"AR {name}", "allreduce", cstart, comm_free))
    return events


def _iso(n_layers: int, t_attn: float, t_mlp: float, t_comm: float) -> list[Event]:
    events, ar_end, compute_free, comm_free = [], {}, 0.0, 0.0
    for i in range(2 * n_layers):
        kind, c = ("attn", t_attn) if i % 2 == 0 else ("mlp", t_mlp)
        for chunk in (0, 1):
            name = f"L{i // 2}.{kind}[{chunk}]"
            start = max(compute_free, ar_end.get((i - 1, chunk), 0.0))   # its chunk's previous all-reduce
            events.append(Event("compute", name, kind, start, start + c / 2))
            compute_free = start + c / 2
            cstart = max(compute_free, comm_free)
            comm_free = ar_end[i, chunk] = cstart + t_comm / 2
            events.append(Event("comm", f"AR {name}", "allreduce", cstart, comm_free))
    return events


def total_time(events: list[Event]) -> float:
    return max(e.end for e in events)


def speedups(n_layers: int, t_attn: float, t_mlp: float, t_comm: float, variants=ALL_VARIANTS) -> dict[str, float]:
    """Idealised speedup of each variant over standard."""
    base = total_time(simulate("standard", n_layers, t_attn, t_mlp, t_comm))
    return {v: base / total_time(simulate(v, n_layers, t_attn, t_mlp, t_comm)) for v in variants}
