"""Decode timing, measured honestly: interleaved variants, barrier per step, max over ranks, medians and spread.

Each rank holds every variant (standard, parallel, ladder, upper_bound built from the same weights; Kraken, a
different model with as many parameters per layer, see ``config.kraken_config``), fills each
variant's KV cache with one prefill, then times decode steps (one new token each). Rounds alternate the order of
the variants (A B C D, then D C B A, ...) so that slow drifts of the machine hit all variants alike. Before each
step all ranks meet at a barrier (outside the timed region); a step's time is the slowest rank's, since the next
token exists only when every rank is done. Reported: the median over all timed steps and the 10th-90th percentile
spread of each variant; each variant's speed-up over standard is read with the course's one rule for noise
(:mod:`~ladder_edu.util.noise`: the median per-round ratio, its bootstrap interval, and "faster", "slower"
or "not distinguishable on this machine").

On a CPU, gloo's communication threads are given a real-time scheduling class where allowed (``comm_priority``,
see ``launch.py``); the result records which one applied, since it changes the numbers a lot.

Communication share = 1 - t(upper_bound) / t(standard): the fraction of a standard decode step that disappears
when the all-reduces are skipped (the same ceiling the Ladder paper plots as "upper bound").
"""
from __future__ import annotations

import statistics
from dataclasses import asdict, dataclass, field

import torch
import torch.distributed as dist

from ...tp import launch
from ...models.config import ALL_VARIANTS, ModelConfig
from ...models.registry import BASELINE, CEILING
from ...models.build import init_weights
from ...models.model import DTYPES
from ...models.spec import RunSpec
from ...models.variants import example_tokens, run_step, variant_model
from ...tp.parallel import TPGroup
from ...util.noise import LEVEL, Comparison, compare_rounds, per_round
from .timing import Timer, interleaved, sync


def decode_worker(spec: RunSpec) -> dict:
    """Runs on every rank; returns {"times": {variant: [seconds per step, max over ranks]},
    "comm_priority": how this rank's communication threads were scheduled}. A decode step adds one token to a
    cache of ``context``; a prefill step processes a ``context``-token prompt from position 0. ``compile_mode``:
    decode steps run compiled (``compiled.CompiledDecode``; "auto" = CUDA graphs on a GPU), compiled before
    timing starts."""
    cfg, variants, batch, context, steps = spec.cfg, list(spec.variants), spec.batch, spec.context, spec.steps
    rounds, warmup, seed, dtype, phase, compile_mode = (spec.rounds, spec.warmup, spec.seed, spec.dtype, spec.phase,
                                                        spec.compile_mode)
    tp = TPGroup.current()
    device = launch.current_device()
    full = init_weights(cfg, seed)
    prompt = example_tokens(cfg, batch, context, seed).to(device)
    models = {}
    with torch.no_grad():
        for v in variants:
            models[v] = variant_model(cfg, v, tp, full, seed, DTYPES[dtype], device)
            models[v].setup_cache(batch, context + steps)
            models[v](prompt)                                     # prefill: fills the KV cache (and warms up)
    compiled = {}
    if compile_mode:
        from ...models.compiled import CompiledDecode
        for v in variants:                                        # compile (and record CUDA graphs) untimed
            compiled[v] = CompiledDecode(models[v], None if compile_mode == "auto" else compile_mode)
            for _ in range(3):
                compiled[v](prompt[:, -1:], context)
    step_times = torch.zeros(steps, dtype=torch.float64)

    def measure(v: str) -> list[float]:
        """``steps`` steps of ``v``, each started together on every rank; a step's time is its slowest rank's."""
        for s in range(steps):
            if tp.size > 1:
                dist.barrier(group=tp.group)
            sync(device)
            with Timer(device) as timer:
                if compiled:
                    compiled[v](prompt[:, -1:], context + s)
                else:
                    run_step(models[v], phase, v, prompt, context, s)
            step_times[s] = timer.seconds
        if tp.size > 1:
            dist.all_reduce(step_times, op=dist.ReduceOp.MAX, group=tp.group)
        return step_times.tolist()

    with torch.no_grad():
        times = interleaved(variants, rounds, warmup, measure)
    mode = next(iter(compiled.values())).mode if compiled else None
    return {"times": times, "comm_priority": launch.applied_comm_priority(), "compiled": mode}


def _percentile(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    k = (len(xs) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (k - lo)


@dataclass
class VariantTiming:
    variant: str
    median_ms: float
    p10_ms: float
    p90_ms: float
    samples: int
    speedup_vs_standard: float | None = None   # median per-round ratio standard / variant (noise.compare)
    speedup_lo: float | None = None            # its bootstrap interval (noise.LEVEL)
    speedup_hi: float | None = None
    verdict: str | None = None                 # noise.FASTER, SLOWER or SAME


@dataclass
class DecodeBenchmark:
    preset: str
    tp: int
    backend: str
    batch: int
    context: int
    rows: list[VariantTiming] = field(default_factory=list)
    comm_share: float | None = None
    comm_priority: str = "normal"
    phase: str = "decode"
    compiled: str | None = None          # the torch.compile mode of the decode steps; None: eager
    rounds: int = 1                      # interleaved rounds the samples came from (the pairs of noise.compare)
    per_round_ms: dict[str, list[float]] = field(default_factory=dict)   # each round's median step, per variant

    def tokens_per_s(self, variant: str) -> float:
        """Decode: batch new tokens per step; prefill: batch x context prompt tokens per step."""
        per_step = self.batch * (self.context if self.phase == "prefill" else 1)
        return per_step / (self.row(variant).median_ms / 1e3)

    def to_dict(self) -> dict:
        return asdict(self)

    def row(self, variant: str) -> VariantTiming:
        return next(r for r in self.rows if r.variant == variant)

    def comparison(self, variant: str) -> Comparison:
        """``variant`` against standard, read with the one noise rule (needs standard in the run)."""
        r = self.row(variant)
        if r.speedup_lo is None:
            raise ValueError(f"no comparison for {variant}: the run has no {BASELINE} to compare with")
        return Comparison(variant, BASELINE, r.speedup_vs_standard, r.speedup_lo, r.speedup_hi, self.rounds)

    def readings(self) -> list[str]:
        """One sentence per variant against standard (upper_bound included: the ceiling), printed by notebooks."""
        return [self.comparison(r.variant).sentence() for r in self.rows
                if r.variant != BASELINE and r.speedup_lo is not None]

    def table(self) -> str:
        threads = f", {self.comm_priority} comm threads" if self.backend == "gloo" else ""
        unit = "ms per prefill" if self.phase == "prefill" else "ms per token"
        how = f", compiled ({self.compiled})" if self.compiled else ""
        head = (f"{self.phase}{how}, preset {self.preset}, TP={self.tp} ({self.backend}{threads}), batch {self.batch}, "
                f"context {self.context}: {unit} (median, p10-p90 over {self.rows[0].samples} steps in {self.rounds} "
                f"rounds); speedup: median per-round ratio to standard, {100 * LEVEL:.0f}% bootstrap interval")
        lines = [head, f"  {'variant':<12} {'median':>8} {'p10-p90':>15} {'speedup':>8} {'interval':>11}  reading"]
        for r in self.rows:
            sp = f"{r.speedup_vs_standard:.2f}x" if r.speedup_vs_standard else "-"
            ci = f"{r.speedup_lo:.3f}-{r.speedup_hi:.3f}" if r.speedup_lo is not None and r.variant != BASELINE else ""
            verdict = r.verdict if r.variant != BASELINE and r.verdict else ""
            lines.append(f"  {r.variant:<12} {r.median_ms:8.3f} {r.p10_ms:7.3f}-{r.p90_ms:<7.3f} {sp:>8} {ci:>11}  "
                         f"{verdict}".rstrip())
        if self.comm_share is not None:
            lines.append(f"  communication share of a standard step (1 - upper_bound/standard): "
                         f"{100 * self.comm_share:.0f}%")
        lines.append("  upper_bound skips every all-reduce: a speed ceiling, not a valid model.")
        return "\n".join(lines)


def summarize(cfg: ModelConfig, tp: int, backend: str, batch: int, context: int,
              times: dict[str, list[float]], comm_priority: str = "normal", phase: str = "decode",
              compiled: str | None = None, rounds: int = 1) -> DecodeBenchmark:
    """The table of a run: ``times[variant]`` holds ``rounds`` equal runs of step times in round order."""
    res = DecodeBenchmark(cfg.name, tp, backend, batch, context, comm_priority=comm_priority, phase=phase,
                          compiled=compiled, rounds=rounds)
    for v, xs in times.items():
        ms = [1e3 * x for x in xs]
        res.rows.append(VariantTiming(v, statistics.median(ms), _percentile(ms, 0.1), _percentile(ms, 0.9), len(ms)))
        res.per_round_ms[v] = per_round(ms, rounds)
    if BASELINE in times:
        std = res.row(BASELINE).median_ms
        for r in res.rows:
            c = compare_rounds(res.per_round_ms[BASELINE], res.per_round_ms[r.variant], names=(r.variant, BASELINE))
            r.speedup_vs_standard, r.speedup_lo, r.speedup_hi, r.verdict = c.speedup, c.lo, c.hi, c.verdict
        if CEILING in times:
            res.comm_share = 1 - res.row(CEILING).median_ms / std
    return res


def decode_benchmark(cfg: ModelConfig, tp: int, variants=ALL_VARIANTS, *, options: launch.LaunchOptions | None = None,
                     **run) -> DecodeBenchmark:
    """Time decode (or prefill) steps of each variant on ``tp`` ranks, interleaved; see the module docstring.
    ``run``: the other fields of :class:`~ladder_edu.models.spec.RunSpec` (batch, context, steps, rounds, warmup,
    seed, dtype, phase, compile_mode: "auto" or a torch.compile mode times compiled decode steps)."""
    return benchmark(RunSpec(cfg, tp, tuple(variants), **run), options)


def benchmark(spec: RunSpec, options: launch.LaunchOptions | None = None) -> DecodeBenchmark:
    """``decode_benchmark`` for a ready spec. Collectives may wait 120 s (600 s when compiling: ranks compile at
    their own pace before the first barrier) unless ``options`` say otherwise."""
    spec.check_fits(spec.context + spec.steps, f"context {spec.context} + steps {spec.steps}")
    options = options or launch.LaunchOptions(timeout_s=120.0)
    if spec.compile_mode:
        options = options.replace(timeout_s=max(options.timeout_s, 600.0))
    backend = options.backend or launch.default_backend(spec.tp)
    results = launch.run(decode_worker, spec.tp, spec, options=options.replace(backend=backend))
    r0 = results[0]
    return summarize(spec.cfg, spec.tp, backend, spec.batch, spec.context, r0["times"], r0["comm_priority"],
                     spec.phase, r0["compiled"], spec.rounds)
