"""Can this machine overlap an all-reduce with computation? A micro-benchmark that answers it.

Ladder residual only pays off if an all-reduce started with ``async_op=True`` actually makes progress while the next
module computes. On a GPU the collective runs on its own stream and the links move the data; on a CPU, gloo moves
the data from its own threads, which need a free core. This probe measures, for compute bursts of growing length
(k matrix-vector products of a decode-sized MLP weight):

* ``compute_ms``: the burst alone;
* ``allreduce_ms``: one blocking all-reduce of a decode activation (dim values), ranks aligned by a barrier;
* ``done_during_compute``: the fraction of async all-reduces already complete when the burst ends;
* ``blocking_ms`` / ``lagged_ms``: ``modules`` x (burst, all-reduce) with a blocking all-reduce (standard's rule) and
  with each all-reduce waited one burst later (ladder's rule), timed in alternating order iteration by iteration;
  ``lagged_speedup`` = the median per-iteration ratio blocking / lagged, read with the course's one rule for noise
  (:mod:`~ladder_edu.util.noise`: a bootstrap interval and "faster", "slower" or "not distinguishable").

Each time is the median over iterations of the slowest rank.
"""
from __future__ import annotations

import statistics
import time
from dataclasses import asdict, dataclass

import torch
import torch.distributed as dist

from ..util.noise import LEVEL, Comparison, compare
from ..tp import launch


@dataclass
class ProbeRow:
    matvecs: int
    compute_ms: float
    allreduce_ms: float
    done_during_compute: float
    blocking_ms: float
    lagged_ms: float
    lagged_speedup: float          # median per-iteration blocking / lagged (noise.compare)
    speedup_lo: float              # its bootstrap interval
    speedup_hi: float
    iters: int

    @property
    def comparison(self) -> Comparison:
        return Comparison("lagged", "blocking", self.lagged_speedup, self.speedup_lo, self.speedup_hi, self.iters)


def _samples_ms(fns, iters: int) -> list[list[float]]:
    """``iters`` timings of each of ``fns`` (slowest rank's), alternating their order iteration by iteration."""
    ts = torch.zeros(len(fns), iters, dtype=torch.float64)
    for i in range(iters):
        for j in (range(len(fns)) if i % 2 == 0 else reversed(range(len(fns)))):
            dist.barrier()
            t0 = time.perf_counter()
            fns[j]()
            ts[j, i] = time.perf_counter() - t0
    dist.all_reduce(ts, op=dist.ReduceOp.MAX)
    return (1e3 * ts).tolist()


def _median_ms(fn, iters: int) -> float:
    return statistics.median(_samples_ms([fn], iters)[0])


def probe_worker(sizes=(1, 2, 4, 8, 16), iters: int = 30, modules: int = 16, dim: int = 512,
                 hidden: int = 1408) -> dict:
    """Runs on every rank (CPU/gloo or GPU/NCCL); returns the rows and the applied comm-thread priority."""
    device = launch.current_device()
    weight = torch.randn(hidden, dim, device=device)
    act = torch.randn(1, dim, device=device)
    msg = torch.randn(1, 1, dim, device=device)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    rows = []
    for k in sizes:
        def burst():
            for _ in range(k):
                act @ weight.T

        def done_fraction():
            done = torch.zeros(1, device=device)
            for _ in range(iters):
                dist.barrier()
                work = dist.all_reduce(msg, async_op=True)
                burst()
                sync()
                done += float(work.is_completed())
                work.wait()
            dist.all_reduce(done, op=dist.ReduceOp.MIN)
            return done.item() / iters

        def blocking():
            for _ in range(modules):
                burst()
                dist.all_reduce(msg)
            sync()

        def lagged():
            work = None
            for _ in range(modules):
                burst()
                if work is not None:
                    work.wait()
                work = dist.all_reduce(msg, async_op=True)
            work.wait()
            sync()

        blocked, lag = _samples_ms([blocking, lagged], iters)
        c = compare(blocked, lag, iters)
        rows.append(ProbeRow(k, _median_ms(lambda: (burst(), sync()), iters),
                             _median_ms(lambda: (dist.all_reduce(msg), sync()), iters), done_fraction(),
                             statistics.median(blocked), statistics.median(lag), c.speedup, c.lo, c.hi, iters))
    return {"rows": [asdict(r) for r in rows], "comm_priority": launch.applied_comm_priority()}


def overlap_probe(world: int = 2, comm_priority: str = "auto", backend: str | None = None, **kwargs) -> dict:
    """Run :func:`probe_worker` on ``world`` ranks; returns {"rows": [ProbeRow...], "comm_priority": ...}."""
    res = launch.run(probe_worker, world, **kwargs,
                     options=launch.LaunchOptions(backend=backend, comm_priority=comm_priority))[0]
    return {"rows": [ProbeRow(**r) for r in res["rows"]], "comm_priority": res["comm_priority"]}


def format_probe(result: dict, modules: int = 16) -> str:
    lines = [f"overlap probe ({result['comm_priority']} comm threads): ms, median of the slowest rank; speedup: "
             f"median per-iteration ratio blocking / lagged, {100 * LEVEL:.0f}% bootstrap interval",
             f"  {'matvecs':>7} {'compute':>8} {'allreduce':>9} {'done during':>11} {f'{modules}x blocking':>12} "
             f"{f'{modules}x lagged':>11} {'speedup':>8} {'interval':>11}  reading"]
    for r in result["rows"]:
        lines.append(f"  {r.matvecs:7d} {r.compute_ms:8.3f} {r.allreduce_ms:9.3f} {r.done_during_compute:10.0%} "
                     f"{r.blocking_ms:12.2f} {r.lagged_ms:11.2f} {r.lagged_speedup:7.2f}x "
                     f"{r.speedup_lo:.3f}-{r.speedup_hi:.3f}  {r.comparison.verdict}")
    return "\n".join(lines)
