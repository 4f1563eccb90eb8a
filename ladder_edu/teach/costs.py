"""The costs the course rests on, measured by the student: an all-reduce (alpha-beta), prefill against decode, and
the noise of a benchmark.

* All-reduce: time t(B) of a blocking all-reduce of B bytes on real ranks, fitted by t = alpha + B / beta (least
  squares on the relative error, alpha >= 0): alpha is what an empty message costs (latency), beta the bandwidth. A message is *latency-bound* when
  B / beta << alpha: a decode step's all-reduce carries batch x dim values (16 KiB for a 70B model at batch 1 in
  bfloat16), far below the crossover B* = alpha x beta.
* Prefill against decode: a prefill runs the whole prompt (T tokens) in one forward pass and writes its keys and
  values into the KV cache; a decode step runs one token, reading every weight and the whole cache once. Per token,
  decode does the same arithmetic as prefill but moves T times more bytes: it is memory-bound.
* Noise: the same benchmark repeated gives a spread, not a number; a difference between two variants is read with
  the course's one rule (``util.noise``: paired interleaved rounds, the median per-round ratio, its bootstrap
  interval).
"""
from __future__ import annotations

import statistics
import time

import torch
import torch.distributed as dist

from ..models.build import init_weights
from ..models.config import ModelConfig
from ..models.model import Transformer
from ..tp import launch
from ..tp.parallel import TPGroup
from ..perf.measure.timing import relative_line, slowest_rank_median
from ..util.noise import paired_ratios
from .palette import ATTN, COMM, PHASES, VARIANTS

SIZES = tuple(1 << k for k in range(10, 26, 1))          # 1 KiB .. 32 MiB


def allreduce_sweep_worker(sizes=SIZES, reps: int = 7) -> dict:
    """Runs on every rank: {bytes: median seconds of a blocking float32 all-reduce, the slowest rank's}."""
    device = launch.current_device()
    out = {}
    for nbytes in sizes:
        t = torch.ones(max(1, nbytes // 4), device=device)
        out[nbytes] = slowest_rank_median(lambda: dist.all_reduce(t), reps, warmup=1, device=device)
    return out


def sequence_parallel_worker(tokens: int = 512, dim: int = 1024, reps: int = 7) -> dict:
    """Runs on every rank: median seconds of what one prefill module communicates, both ways (float32):
    tensor parallelism's all-reduce of the [tokens, dim] output, and sequence parallelism's reduce-scatter (each
    rank keeps tokens/n rows of the sum, for its norm and residual add) followed by the all-gather that rebuilds
    the whole input of the next column-parallel linear."""
    device, n = launch.current_device(), dist.get_world_size()
    x = torch.randn(tokens, dim, device=device)
    buf = x.clone()                                   # the all-reduce sums in place: no copy inside the timing
    part = torch.empty(tokens // n, dim, device=device)
    whole = torch.empty(tokens, dim, device=device)

    def timed(fn):
        return slowest_rank_median(fn, reps, warmup=1, device=device)
    ar = timed(lambda: dist.all_reduce(buf))
    rs = timed(lambda: dist.reduce_scatter_single(part, x))
    ag = timed(lambda: dist.all_gather_single(whole, part))
    return {"bytes": 4 * tokens * dim, "all_reduce_s": ar, "reduce_scatter_s": rs, "all_gather_s": ag}


def fit_alpha_beta(sizes, seconds) -> tuple[float, float]:
    """(alpha seconds, beta bytes/s) of the line t = alpha + B / beta fitted by *relative* error (every message
    size counts alike, 1 KiB as much as 32 MiB; plain least squares is ruled by the largest times and can give a
    negative latency). Physical bounds: alpha >= 0 (a negative intercept is refitted through the origin) and
    beta > 0 (a ValueError otherwise: the times do not grow with the size)."""
    alpha, slope, _ = relative_line(sizes, seconds)
    if alpha < 0:
        alpha, slope, _ = relative_line(sizes, seconds, 0.0)
    if not slope > 0:
        raise ValueError("the all-reduce times do not grow with the message size: no bandwidth to fit; time more "
                         "sizes or more repetitions")
    return alpha, 1.0 / slope


def fit_error(sizes, seconds, alpha: float, beta: float) -> float:
    """The fitted line's mean relative error at the measured points (0.1: 10% off on average)."""
    return sum(abs(alpha + b / beta - t) / t for b, t in zip(sizes, seconds)) / len(sizes)


def decode_message_bytes(cfg: ModelConfig, batch: int = 1, bytes_per_value: int = 2) -> int:
    """What one decode all-reduce carries: the stream of ``batch`` tokens, ``dim`` values each."""
    return batch * cfg.dim * bytes_per_value


def prefill_and_decode(cfg: ModelConfig, context: int = 64, reps: int = 5) -> dict:
    """On one device: seconds of a ``context``-token prefill and of one decode step after it (medians), with the
    bytes each reads (weights once, plus the KV cache for decode) and the flops each does."""
    model = Transformer.from_full_state_dict(cfg, init_weights(cfg), TPGroup.single())
    prompt = torch.randint(0, cfg.vocab_size, (1, context), generator=torch.Generator().manual_seed(0))
    params = sum(p.numel() for p in model.parameters())
    kv_bytes = 2 * cfg.n_layers * context * cfg.n_kv_heads * cfg.head_dim * 4
    pre, dec = [], []
    with torch.no_grad():
        for _ in range(reps):
            model.setup_cache(1, context + 1)
            t0 = time.perf_counter()
            model(prompt)
            pre.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            model(prompt[:, -1:], start=context)
            dec.append(time.perf_counter() - t0)
    return {"context": context, "prefill_s": statistics.median(pre), "decode_s": statistics.median(dec),
            "weight_bytes": 4 * params, "kv_cache_bytes": kv_bytes,
            "prefill_flops": 2 * params * context, "decode_flops": 2 * params}


def plot_allreduce(sweep: dict, fit: tuple[float, float], nccl: dict | None = None, decode_bytes: int | None = None):
    """Measured all-reduce times against bytes (log-log), the alpha-beta line, NCCL's model for comparison, and
    where a decode step's message falls."""
    import matplotlib.pyplot as plt
    sizes = sorted(sweep)
    alpha, beta = fit
    fig, ax = plt.subplots(figsize=(7.5, 4))
    ax.loglog(sizes, [1e6 * sweep[s] for s in sizes], "o", color=COMM, label="measured here (median, slowest rank)")
    ax.loglog(sizes, [1e6 * (alpha + s / beta) for s in sizes], "-", color=COMM, alpha=0.6,
              label=f"fit: alpha {1e6 * alpha:.0f} us, beta {beta / 1e9:.2f} GB/s")
    if nccl:
        ax.loglog(sizes, [1e6 * nccl[s] for s in sizes], "--", color=ATTN, label="NCCL's model, 8 H100s on NVLink")
    if alpha > 0:
        ax.axvline(alpha * beta, color=COMM, lw=0.8, ls="-.", alpha=0.6,
                   label=f"crossover alpha x beta = {alpha * beta / 1024:.0f} KiB")
    if decode_bytes:
        ax.axvline(decode_bytes, color="#333333", lw=0.8, ls=":", label="a 70B decode all-reduce (batch 1)")
    ax.set_xlabel("bytes per all-reduce")
    ax.set_ylabel("microseconds")
    ax.set_title("What an all-reduce costs: latency-bound on the left, bandwidth-bound on the right", fontsize=10)
    ax.legend(fontsize=8, loc="upper left")
    fig.tight_layout()
    return fig


def plot_prefill_decode(r: dict):
    """Per token: time, bytes read and flops of a prefill and of a decode step."""
    import matplotlib.pyplot as plt
    t = r["context"]
    rows = {"time per token (us)": (1e6 * r["prefill_s"] / t, 1e6 * r["decode_s"]),
            "bytes read per token (KB)": (r["weight_bytes"] / t / 1e3,
                                          (r["weight_bytes"] + r["kv_cache_bytes"]) / 1e3),
            "flops per token (M)": (r["prefill_flops"] / t / 1e6, r["decode_flops"] / 1e6)}
    fig, axes = plt.subplots(1, 3, figsize=(11, 3.2))
    for ax, (name, (p, d)) in zip(axes, rows.items()):
        ax.bar(["prefill", "decode"], [p, d], color=[PHASES["prefill"], PHASES["decode"]], edgecolor="black", lw=0.4)
        ax.set_title(name, fontsize=9)
    fig.suptitle(f"Prefill of {t} tokens against one decode step after it, per token (one CPU process)", fontsize=10)
    fig.tight_layout()
    return fig


def plot_noise(runs: list, variant: str = "ladder", baseline: str = "standard"):
    """Left: each round's median step of the first run, per variant, in round order (the machine drifts; the two
    variants drift together, which is why the rounds are compared in pairs). Right: each repeat's per-round ratios
    (small dots), their median (large dot) and its bootstrap interval (bar), against the line "no difference"."""
    import matplotlib.pyplot as plt
    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 3.4), gridspec_kw={"width_ratios": [1.2, 1]})
    first = runs[0]
    for v in (baseline, variant):
        ys = first.per_round_ms[v]
        a.plot(range(1, len(ys) + 1), ys, "o-", color=VARIANTS.get(v, "#333333"), label=v)
    a.set_xlabel("round (variants interleaved)")
    a.set_ylabel("median ms per decode step")
    a.set_xticks(range(1, first.rounds + 1))
    a.legend(fontsize=8, loc="best")
    a.set_title("Repeat 1, round by round", fontsize=9)
    for i, bench in enumerate(runs):
        c = bench.comparison(variant)
        ratios = paired_ratios(bench.per_round_ms[baseline], bench.per_round_ms[variant])
        b.plot([i + 1] * len(ratios), ratios, ".", color="#999999")
        b.errorbar(i + 1.15, c.speedup, yerr=[[c.speedup - c.lo], [c.hi - c.speedup]], fmt="o",
                   color=VARIANTS.get(variant, "#333333"), capsize=4)
    b.axhline(1.0, color="black", lw=0.8, ls="--")
    b.set_xticks(range(1, len(runs) + 1), [f"repeat {i + 1}" for i in range(len(runs))])
    b.set_xlim(0.5, len(runs) + 0.7)
    b.set_ylabel(f"{baseline} / {variant} per round")
    b.set_title("Paired ratios, median and 95% interval (dashed: no difference)", fontsize=9)
    fig.tight_layout()
    return fig


def plot_sequence_parallel(r: dict):
    """Left: the data flow of one module under TP and under sequence parallelism. Right: the measured times."""
    import matplotlib.pyplot as plt
    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 3.4), gridspec_kw={"width_ratios": [1.6, 1]})
    steps = [("TP", ["norm\n(all tokens)", "column-\nparallel", "row-\nparallel", "ALL-\nREDUCE",
                     "residual\n(all tokens)"]),
             ("TP + SP", ["norm\n(tokens/n)", "ALL-\nGATHER", "column-\nparallel", "row-\nparallel", "REDUCE-\nSCATTER",
                          "residual\n(tokens/n)"])]
    for y, (name, boxes) in zip((1, 0), steps):
        for x, box in enumerate(boxes):
            comm = box.isupper()
            a.text(x * 1.6, y, box.lower() if comm else box, ha="center", va="center", fontsize=8,
                   bbox=dict(boxstyle="round", fc=COMM if comm else "#EEEEEE", ec="black", lw=0.5,
                             alpha=0.8 if comm else 1))
        a.text(-1.4, y, name, ha="right", va="center", fontsize=9, weight="bold")
    a.set_xlim(-2.6, 9)
    a.set_ylim(-0.6, 1.6)
    a.axis("off")
    a.set_title("One module of a prefill: where the collectives go", fontsize=9)
    names = ["all-reduce", "reduce-scatter", "all-gather", "RS + AG"]
    vals = [r["all_reduce_s"], r["reduce_scatter_s"], r["all_gather_s"], r["reduce_scatter_s"] + r["all_gather_s"]]
    b.bar(names, [1e3 * v for v in vals], color=[COMM, COMM, COMM, "#DD8452"], edgecolor="black", lw=0.4)
    b.set_ylabel("ms (median, slowest rank)")
    b.set_title(f"Measured here: {r['bytes'] / 2 ** 20:.0f} MiB per module \n(orange: the two SP "
                f"collectives added up)", fontsize=9)
    b.tick_params(axis="x", labelsize=8)
    fig.tight_layout()
    return fig
