"""Derivations before models: the pictures that come before the fitted performance model.

* **Roofline** (``machine_peaks``, ``plot_roofline``): a kernel doing F flops on B bytes takes at least
  max(F / peak, B / bandwidth); its arithmetic intensity F / B decides which. Decode reads every weight for two
  flops per weight (about 0.5 flop per float32 byte), far left of the ridge peak / bandwidth: memory-bound, so its
  time is about bytes / bandwidth, whatever the flops.
* **Ring all-reduce** (``plot_ring``): ``perf.model.nccl.ring_allreduce_time`` derives
  T = 2(n-1) alpha + 2(n-1)/n B / bandwidth; the alpha-beta fit of notebook 00 is that line at the ranks measured,
  and the same link at more ranks pays more latency steps while the bytes term stays below 2 B / bandwidth.
* **Back of the envelope** (``plot_envelope``): ``perf.model.alternatives.envelope``'s terms beside the fitted model.
* **The alternatives** (``plot_alternatives``): ladder's predicted gain against the all-reduce's latency.
"""
from __future__ import annotations

import time

import torch

from ..models.registry import BASELINE, LADDER
from ..perf.model.nccl import ring_allreduce_time
from .palette import ATTN, COMM, LM_HEAD, PHASES, VARIANTS


def machine_peaks(mib: int = 256, n: int = 1024, reps: int = 5) -> dict[str, float]:
    """This process's roofs: memory bandwidth (bytes/s; copying ``mib`` MiB reads and writes each byte) and matmul
    throughput (flops/s of an n x n float32 matmul), best of ``reps``."""
    src, dst = torch.empty(mib * 2 ** 18), torch.empty(mib * 2 ** 18)
    a, b = torch.randn(n, n), torch.randn(n, n)
    copy, mm = [], []
    for _ in range(reps):
        t0 = time.perf_counter()
        dst.copy_(src)
        copy.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        a @ b
        mm.append(time.perf_counter() - t0)
    return {"bandwidth": 2 * src.numel() * 4 / min(copy), "flops": 2 * n ** 3 / min(mm)}


def plot_roofline(pd: dict, peaks: dict):
    """The roof min(peak, intensity x bandwidth) of this machine and where prefill and decode (``costs.
    prefill_and_decode``: flops and bytes per step, measured times) sit under it."""
    import matplotlib.pyplot as plt
    bw, peak = peaks["bandwidth"], peaks["flops"]
    points = {"prefill": (pd["prefill_flops"], pd["weight_bytes"] + pd["kv_cache_bytes"], pd["prefill_s"]),
              "decode": (pd["decode_flops"], pd["weight_bytes"] + pd["kv_cache_bytes"], pd["decode_s"])}
    xs = [2 ** (k / 4) for k in range(-12, 45)]
    fig, ax = plt.subplots(figsize=(8, 5.2))
    ax.loglog(xs, [min(peak, x * bw) / 1e9 for x in xs], color="#333333",
              label=f"roof: {bw / 1e9:.1f} GB/s x intensity, at most {peak / 1e9:.0f} GFLOP/s (measured)")
    ax.axvline(peak / bw, color="#999999", lw=0.8, ls=":", label=f"ridge: {peak / bw:.1f} flop/byte")
    for name, (flops, nbytes, sec) in points.items():
        ax.loglog([flops / nbytes], [flops / sec / 1e9], "o", ms=9, color=PHASES[name],
                  label=f"{name}: {flops / nbytes:.2f} flop/byte, {flops / sec / 1e9:.1f} GFLOP/s reached")
    ax.set_xlabel("arithmetic intensity (flops per byte read)")
    ax.set_ylabel("GFLOP/s")
    ax.set_title("Roofline of this machine: decode sits far left of the ridge,\nso bytes set its time", fontsize=10)
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=2, frameon=False)
    fig.tight_layout()
    return fig


def plot_ring(sweep: dict, fit: tuple[float, float], world: int, ranks=(2, 4, 8), nccl: dict | None = None):
    """The measured all-reduce times, the ring derived from the fit at ``world`` ranks (per step alpha / (2(n-1)),
    per link beta x 2(n-1)/n), the same link at more ranks, and NCCL's model for 8 H100s."""
    import matplotlib.pyplot as plt
    alpha, beta = fit
    step = alpha / (2 * (world - 1))
    link = beta * 2 * (world - 1) / world
    sizes = sorted(sweep)
    fig, ax = plt.subplots(figsize=(8, 5.2))
    ax.loglog(sizes, [1e6 * sweep[s] for s in sizes], "o", color=COMM, label=f"measured here, {world} ranks")
    for n, ls in zip(ranks, ("-", "--", "-.", ":")):
        ax.loglog(sizes, [1e6 * ring_allreduce_time(n, s, step, link) for s in sizes], ls, color="#333333",
                  alpha=0.4 + 0.6 * (n == world), label=f"ring of {n}: 2({n}-1) steps of {1e6 * step:.0f} us "
                                                         f"+ {2 * (n - 1) / n:.2f} B / {link / 1e9:.1f} GB/s")
    if nccl:
        ax.loglog(sizes, [1e6 * nccl[s] for s in sizes], "--", color=ATTN, label="NCCL's model, 8 H100s on NVLink")
    ax.set_xlabel("bytes per all-reduce (B)")
    ax.set_ylabel("microseconds")
    ax.set_title("The ring all-reduce derived: more ranks add latency steps,\nthe bytes term stays below 2 B / link",
                 fontsize=10)
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=2, frameon=False)
    fig.tight_layout()
    return fig


def plot_envelope(env: dict, model_ms: dict[str, float]):
    """Standard's back-of-envelope step as its three terms, ladder's per-module max, and the fitted model's steps."""
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(8, 3.2))
    left = 0.0
    for name, color in (("weights / HBM bandwidth", PHASES["prefill"]), ("kernels x per-kernel cost", LM_HEAD),
                        ("all-reduces x cost", COMM)):
        ax.barh(3, 1e3 * env[name], left=left, color=color, edgecolor="black", lw=0.4, label=name)
        left += 1e3 * env[name]
    ax.barh(2, 1e3 * env[LADDER], color=VARIANTS[LADDER], edgecolor="black", lw=0.4,
            label="ladder: n max(c, a) + min(c, a)")
    for y, v in ((1, BASELINE), (0, LADDER)):
        ax.barh(y, model_ms[v], color=VARIANTS[v], edgecolor="black", lw=0.4, hatch="//", alpha=0.6)
    ax.set_yticks([3, 2, 1, 0], ["standard (envelope)", "ladder (envelope)", "standard (fitted model)",
                                 "ladder (fitted model)"], fontsize=8)
    ax.set_xlabel("ms per decode step")
    ax.set_title("The back-of-envelope step beside the fitted performance model", fontsize=10)
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.25), ncol=2, frameon=False)
    fig.tight_layout()
    return fig


def plot_alternatives(latencies_us, curve: dict[str, list[float]], marks: dict[str, float]):
    """Each variant's predicted speed-up over standard against the all-reduce's latency, with published latencies
    of the implementations a deployment can choose marked."""
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(8, 4.8))
    for v, ys in curve.items():
        ax.plot(latencies_us, ys, "-", color=VARIANTS[v], lw=2, label=f"{v} (performance model)")
    styles = (("--", "#333333"), (":", "#8C564B"), ("-.", "#17BECF"), ((0, (5, 1)), "#BCBD22"))
    groups: list[list[tuple[str, float]]] = []          # marks within 0.5 us of each other share one line
    for name, us in sorted(marks.items(), key=lambda kv: kv[1]):
        if groups and us - groups[-1][-1][1] < 0.5:
            groups[-1].append((name, us))
        else:
            groups.append([(name, us)])
    for group, (ls, color) in zip(groups, styles):
        label = "; ".join(f"{name}: {us:g} us" for name, us in group)
        ax.axvline(sum(us for _, us in group) / len(group), color=color, lw=1.6, ls=ls, label=label)
    ax.axhline(1.0, color="#999999", lw=0.8)
    ax.set_ylim(0.95, max(max(ys) for ys in curve.values()) + 0.05)
    ax.set_xlabel("latency of one decode all-reduce (us)")
    ax.set_ylabel("speed-up over standard (tokens/s)")
    ax.set_title("What ladder still buys as the all-reduce gets faster", fontsize=10)
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=2, frameon=False)
    fig.tight_layout()
    return fig
