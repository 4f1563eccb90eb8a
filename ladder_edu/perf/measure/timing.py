"""How the package times things, written once: the device, a step's timer, interleaved rounds, a compiled step's
timings, the lines fitted to timings (the per-layer slope, a relative-error line), and the random weights a timed
model gets.

Every comparison interleaves its candidates: round r runs them in order when r is even and in reverse when it is
odd, so that a drift of the machine (a clock that ramps, a neighbour that starts) lands on all of them alike; the
first ``warmup`` rounds are run and dropped.
"""
from __future__ import annotations

import statistics
import time
from typing import Callable, Iterable

import torch


def default_device(device=None) -> torch.device:
    """``device``, or the GPU if there is one, else the CPU."""
    return torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))


def sync(device: torch.device) -> None:
    """Wait for the device's queued work (a no-op on a CPU)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class Timer:
    """Wall time of what runs inside ``with Timer(device) as t:``, in its ``seconds``: CUDA events on a GPU (what
    ran on the device), ``time.perf_counter`` on a CPU."""

    def __init__(self, device: torch.device):
        self.cuda = device.type == "cuda"
        if self.cuda:
            self.start, self.end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)

    def __enter__(self):
        if self.cuda:
            self.start.record()
        else:
            self.t0 = time.perf_counter()
        return self

    def __exit__(self, *exc):
        if self.cuda:
            self.end.record()
            self.end.synchronize()
            self.seconds = self.start.elapsed_time(self.end) / 1e3
        else:
            self.seconds = time.perf_counter() - self.t0


def interleaved(names: Iterable[str], rounds: int, warmup: int,
                measure: Callable[[str], list[float]]) -> dict[str, list[float]]:
    """{name: samples}: ``warmup + rounds`` rounds, each calling ``measure(name)`` for every name, in order on even
    rounds and reversed on odd ones; the samples of the warm-up rounds are dropped."""
    names = list(names)
    out = {n: [] for n in names}
    for r in range(warmup + rounds):
        for n in (names if r % 2 == 0 else names[::-1]):
            samples = measure(n)
            if r >= warmup:
                out[n].extend(samples)
    return out


def compile_and_time(step: Callable[[int], object], device: torch.device, steps: int = 30,
                     compile_calls: int = 3) -> dict:
    """Time a compiled step ``step(s)`` (s: the step's index): its first ``compile_calls`` calls compile it
    (``compile_s``); then ``steps`` calls each alone (``median_us``, ``p10_us``, ``p90_us``: CPU launch work
    included) and ``steps`` back to back with one synchronisation at the end (``pipelined_us``: the CPU runs
    ahead, as in gpt-fast's generation loop)."""
    t0 = time.perf_counter()
    for s in range(compile_calls):
        step(s)
    sync(device)
    compile_s = time.perf_counter() - t0
    times = []
    for s in range(steps):
        with Timer(device) as timer:
            step(s)
        times.append(timer.seconds)
    with Timer(device) as timer:
        for s in range(steps):
            step(s)
    q = statistics.quantiles(times, n=10) if len(times) > 1 else times * 9
    return {"compile_s": compile_s, "median_us": 1e6 * statistics.median(times), "p10_us": 1e6 * q[0],
            "p90_us": 1e6 * q[-1], "pipelined_us": 1e6 * timer.seconds / steps, "steps": steps}


def per_layer_slope(a_layers: int, a_us: float, b_layers: int, b_us: float) -> tuple[float, float]:
    """(per-layer time, the rest) of a step timed at two layer counts: the line through the two points."""
    slope = (b_us - a_us) / (b_layers - a_layers)
    return slope, a_us - a_layers * slope


def relative_line(xs, ys, intercept=None) -> tuple[float, float, float]:
    """Fit y = a + b x minimising the squared *relative* error (weights 1/y: a point 10x smaller counts as much);
    ``intercept`` fixes a. Returns (a, b, mean relative error of the line at the points)."""
    w = [1.0 / y for y in ys]
    if intercept is None:
        sw = sum(wi * wi for wi in w)
        sx = sum(wi * wi * x for wi, x in zip(w, xs))
        sy = sum(wi * wi * y for wi, y in zip(w, ys))
        sxx = sum(wi * wi * x * x for wi, x in zip(w, xs))
        sxy = sum(wi * wi * x * y for wi, x, y in zip(w, xs, ys))
        b = (sw * sxy - sx * sy) / (sw * sxx - sx * sx)
        a = (sy - b * sx) / sw
    else:
        a = intercept
        b = sum(wi * wi * x * (y - a) for wi, x, y in zip(w, xs, ys)) / sum(wi * wi * x * x for wi, x in zip(w, xs))
    err = sum(abs(a + b * x - y) / y for x, y in zip(xs, ys)) / len(xs)
    return a, b, err


def random_fill(model: torch.nn.Module, std: float, seed: int = 0) -> torch.nn.Module:
    """A timed model's weights: every norm's weight 1, every other weight N(0, std) (the values do not change a
    step's time; norms of 1 keep activations in range)."""
    torch.manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            p.fill_(1.0) if name.endswith("norm.weight") else p.normal_(0.0, std)
    return model


def slowest_rank_median(fn: Callable[[], object], reps: int, warmup: int = 0,
                        device: torch.device = torch.device("cpu")) -> float:
    """Seconds of ``fn`` on a process group's ranks: each call starts after a barrier (and the device's queue
    drained), the median over ``reps`` calls per rank, the slowest rank's median (a collective is done when its
    last rank is). ``device``: where the ranks' tensors live (NCCL: the rank's GPU)."""
    import torch.distributed as dist
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(reps):
        dist.barrier()
        sync(device)
        t0 = time.perf_counter()
        fn()
        sync(device)
        times.append(time.perf_counter() - t0)
    slowest = torch.tensor([statistics.median(times)], dtype=torch.float64, device=device)
    dist.all_reduce(slowest, op=dist.ReduceOp.MAX)
    return float(slowest)
