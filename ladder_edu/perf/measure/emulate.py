"""Emulated rank: one rank's shard of a model too large for this machine, with MODELED communication.

Llama-3-70B at TP=8 needs 8 GPUs. One of its ranks needs only one eighth of every layer. This module runs that
shard on one device, and replaces every all-reduce by a wait as long as the interconnect model predicts
(``nccl.allreduce_time``), issued so that it overlaps exactly as the real collective would:

* on CUDA, on a side stream (``torch.cuda._sleep``, a spin kernel of a number of SM cycles; cycles per second are
  timed once per GPU, under load: ``sleep_cycles_per_second``), so it runs beside the compute stream as NCCL's
  kernels would; the same step captured in a CUDA graph is ``graphed.py``;
* on a CPU, with no thread at all: an all-reduce issued at time t, when the link is free from f, ends at
  max(t, f) + A (A: the modeled duration), and ``wait()`` holds the calling thread until that end (a sleep to
  within 1 ms of it, then a spin on ``time.perf_counter``, so the timer is finer than ``time.sleep``'s). A link that
  needs no CPU: what a NIC or a GPU's copy engines give, and what gloo's threads on a 2-core machine do not.

The waits are serialised in order, like collectives on one process group: the link is the critical-path model's
communication lane (``perf/model/critical_path.py``), and ``tests/test_emulate.py`` times a schedule of known
compute and link times against that model's prediction. ``link`` (seconds for a message of n bytes) replaces
NCCL's model by any other: ``nccl.ring_allreduce_time`` is the textbook ring at a latency and bandwidth a student
picks. ``ModeledGroup.log`` records each modeled all-reduce's (issue, start, end) so a profile can show it. The model code is unchanged: the
emulated link is a :class:`ModeledGroup` in the model's TPGroup, and ``comm.all_reduce_async`` hands it the tensor.
``ModeledGroup.schedule`` records, in program order, where each all-reduce starts and where the compute waits for
it: the places a CUDA graph of the step joins the two streams (tested against hand-written schedules).
The numbers are predictions of the communication, not measurements of it, and every output says so.
"""
from __future__ import annotations

import functools
import statistics
import time
from typing import Callable

import torch

from .bench import summarize
from .timing import Timer, default_device, interleaved, random_fill
from ...models.variants import run_step
from ...models.config import BENCH_VARIANTS, ModelConfig, variant_config
from ...models.registry import BASELINE, EMULATED, require
from ...models.model import DTYPES, Transformer
from ...models.spec import RunSpec
from ...tp.parallel import TPGroup
from ..model.hardware import Hardware
from ..model.nccl import allreduce_time


def allreduce_seconds(hw: Hardware, tp: int, nbytes: int, nodes: int = 1) -> float:
    """The performance model's all-reduce time (``nccl.allreduce_time``: NCCL's algorithm choice and costs)."""
    return allreduce_time(hw, tp, nbytes, nodes)[0]


@functools.lru_cache(maxsize=None)
def sleep_cycles_per_second(index: int) -> float:
    """SM cycles per second that ``torch.cuda._sleep`` spins on GPU ``index``: the slope of its time (CUDA events)
    between 2M and 8M cycles, median of 3, so its launch cost drops out and the clock is the one under load (an
    idle GPU may report a lower clock)."""
    with torch.cuda.device(index):
        torch.cuda._sleep(1_000_000)
        slopes = []
        for _ in range(3):
            ms = []
            for n in (2_000_000, 8_000_000):
                start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                start.record()
                torch.cuda._sleep(n)
                end.record()
                end.synchronize()
                ms.append(start.elapsed_time(end))
            slopes.append(6_000_000 / ((ms[1] - ms[0]) / 1e3))
    return statistics.median(slopes)


SPIN_S = 1e-3          # wait_until sleeps to within this of the deadline, then spins


def wait_until(deadline: float) -> None:
    """Hold the calling thread until ``time.perf_counter() >= deadline``: ``time.sleep`` overshoots by 50-100 us on
    Linux, so it sleeps to within ``SPIN_S`` and spins the rest."""
    while (left := deadline - time.perf_counter()) > SPIN_S:
        time.sleep(left - SPIN_S)
    while time.perf_counter() < deadline:
        pass


class _Done:
    """The handle of one modeled all-reduce; ``wait()`` returns once its modeled end has passed."""

    def __init__(self, end, index: int = 0, schedule: list | None = None):
        self.end, self.index, self.schedule = end, index, schedule

    def wait(self):
        if self.schedule is not None:
            self.schedule.append(("wait", self.index))
        if isinstance(self.end, float):
            wait_until(self.end)
        else:
            torch.cuda.current_stream().wait_event(self.end)


class ModeledGroup:
    """A stand-in for a TP process group of ``tp`` ranks whose all-reduces take the modeled time and return the
    local tensor unchanged (so the numbers computed are one rank's partial sums: timing only, not a valid model).
    ``link(nbytes) -> seconds``: the all-reduce's duration (default: NCCL's model for ``hw``)."""

    def __init__(self, hw: Hardware | None, tp: int, device: torch.device,
                 link: Callable[[int], float] | None = None):
        self.hw, self.tp, self.device = hw, tp, device
        self.link = link or (lambda nbytes: allreduce_seconds(hw, tp, nbytes))    # hw: only for this default
        self.modeled_seconds = 0.0
        self.schedule: list[tuple[str, int]] | None = None   # record_schedule(): ("start", k) / ("wait", k)
        self.log: list[tuple[float, float, float]] | None = None   # record_log(): (issued, start, end), seconds
        self.started = 0
        self.free_at = 0.0                                   # CPU: when the link finishes its last collective
        if device.type == "cuda":
            self.stream = torch.cuda.Stream(device=device, priority=-1)
            self.cycles_per_s = sleep_cycles_per_second(device.index if device.index is not None
                                                        else torch.cuda.current_device())

    def record_schedule(self) -> list[tuple[str, int]]:
        """From now on, append ("start", k) and ("wait", k) to the returned list, k counting from 0 again."""
        self.schedule, self.started = [], 0
        return self.schedule

    def record_log(self) -> list[tuple[float, float, float]]:
        """From now on (CPU), append each all-reduce's (issued, start, end) in ``time.perf_counter`` seconds."""
        self.log = []
        return self.log

    def all_reduce(self, t: torch.Tensor) -> _Done:
        seconds = self.link(t.numel() * t.element_size())
        self.modeled_seconds += seconds
        index, self.started = self.started, self.started + 1
        if self.schedule is not None:
            self.schedule.append(("start", index))
        if self.device.type == "cuda":
            ready = torch.cuda.Event()
            ready.record()
            done = torch.cuda.Event()
            with torch.cuda.stream(self.stream):
                self.stream.wait_event(ready)
                torch.cuda._sleep(int(seconds * self.cycles_per_s))
                done.record(self.stream)
            return _Done(done, index, self.schedule)
        issued = time.perf_counter()
        start = max(issued, self.free_at)                    # one collective at a time, in order
        self.free_at = start + seconds
        if self.log is not None:
            self.log.append((issued, start, self.free_at))
        return _Done(self.free_at, index, self.schedule)

    def close(self):
        """Nothing to release (kept so that callers can treat every group alike)."""


def emulated_rank_model(cfg: ModelConfig, variant: str, hw: Hardware | None, tp: int, device=None, dtype: str = "float32",
                        seed: int = 0, link: Callable[[int], float] | None = None) -> tuple[Transformer, ModeledGroup]:
    """Rank 0's shard of ``cfg`` at TP=``tp`` with random N(0, init_std) weights, built directly on ``device``
    (the full model is never materialised), and its modeled group."""
    cfg.check_tp(tp)
    device = default_device(device)
    group = ModeledGroup(hw, tp, device, link)
    model = Transformer(variant_config(cfg, variant), TPGroup(0, tp, group, emulated=True), DTYPES[dtype], device)
    return random_fill(model, cfg.init_std, seed).eval(), group


def variant_models(base: Transformer, cfg: ModelConfig, variants, dtype: str, batch: int,
                   cache: int) -> dict[str, Transformer]:
    """Each variant on ``base``'s shard weights and TP group (no copy: they differ only in data flow), with a KV
    cache of ``cache`` positions for ``batch`` sequences."""
    models = {}
    for v in variants:
        m = Transformer(variant_config(cfg, v), base.tp, DTYPES[dtype], torch.device("meta"))
        m.load_state_dict(base.state_dict(), assign=True)
        for name, p in base.named_parameters():   # the fused projections load as new tensors: point them back
            owner, _, attr = name.rpartition(".")
            setattr(m.get_submodule(owner), attr, p)
        m.rope_cos, m.rope_sin = base.rope_cos, base.rope_sin
        m.setup_cache(batch, cache)
        models[v] = m.eval()
    return models


def emulated_benchmark(spec: RunSpec, hw: Hardware | None = None, device=None,
                       link: Callable[[int], float] | None = None):
    """Time rank 0's shard of each of ``spec.variants`` (default: ``BENCH_VARIANTS``) at TP ``spec.tp`` with
    all-reduces modeled for ``hw``, interleaved as in ``bench.py`` (``spec``: the run's batch, context, steps,
    rounds, warm-up, seed, dtype and phase).

    All variants share one set of shard weights (they differ only in data flow), so four variants of a 70B shard
    fit where one does. ``link``: another model of an all-reduce's duration (``ModeledGroup``; then ``hw`` may be
    None), named in the result. Returns a ``bench.DecodeBenchmark`` whose backend says the communication is modeled."""
    if hw is None and link is None:
        raise ValueError("the emulated rank needs a hardware (--gpu NAME) or a link to model its all-reduces")
    cfg, tp, batch, context, steps, phase = spec.cfg, spec.tp, spec.batch, spec.context, spec.steps, spec.phase
    variants, dtype = list(spec.variants or BENCH_VARIANTS), spec.dtype
    require(variants, EMULATED, "the emulated rank (a Megatron shard; time Kraken on real ranks with ladder-edu "
            "bench --arch kraken, or model it with ladder-edu predict)")
    base, group = emulated_rank_model(cfg, BASELINE, hw, tp, device, dtype, spec.seed, link)
    device = base.embed_tokens.weight.device
    try:
        models = variant_models(base, cfg, variants, dtype, batch, context + steps)
        prompt = torch.randint(0, cfg.vocab_size, (batch, context), device=device)
        def measure(v: str) -> list[float]:
            out = []
            for s in range(steps):
                with Timer(device) as timer:
                    run_step(models[v], phase, v, prompt, context, s)
                out.append(timer.seconds)
            return out

        with torch.no_grad():
            for m in models.values():
                m(prompt)
            times = interleaved(variants, spec.rounds, spec.warmup, measure)
    finally:
        group.close()
    modeled = link if link is not None else hw.name
    return summarize(cfg, tp, f"1 device, all-reduces MODELED as {modeled}", batch, context, times, "n/a", phase,
                     rounds=spec.rounds)
