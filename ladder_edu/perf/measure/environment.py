"""What this machine can run: devices, backends, links between GPUs, and the largest preset and TP that fit.

``report()`` gathers it (from torch, the OS and, where installed, NVML for NVLink), ``format_report`` says it in
words, and ``ladder-edu env --json FILE`` writes both. Instructors run it on each lab machine before class.

Fit rule: a rank holds 1/TP of a model's weights plus a KV cache of ``context`` tokens for ``batch`` sequences and
a working margin; in bfloat16 on a GPU (2 bytes per value), float32 on a CPU (4 bytes). A preset fits at TP = n
when that is at most 85% of one GPU's memory (CPU: of the machine's memory split over n ranks).
"""
from __future__ import annotations

import os
import platform

from ...models.config import PRESETS

HEADROOM = 0.85


def _memory_bytes() -> int:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def _realtime_allowed() -> bool:
    """Can this process put a thread in a real-time class (gloo comm threads, ``--comm-priority realtime``)?"""
    import threading
    result = []

    def probe():
        try:
            os.sched_setscheduler(0, os.SCHED_RR, os.sched_param(1))
            os.sched_setscheduler(0, os.SCHED_OTHER, os.sched_param(0))
            result.append(True)
        except (AttributeError, PermissionError, OSError):
            result.append(False)
    t = threading.Thread(target=probe)
    t.start()
    t.join()
    return result[0]


def _nvlink(i: int, j: int) -> bool | None:
    """Is there an active NVLink from GPU i to GPU j? None when NVML (nvidia-ml-py) is not installed."""
    try:
        import pynvml
    except ImportError:
        return None
    try:
        pynvml.nvmlInit()
        h, other = pynvml.nvmlDeviceGetHandleByIndex(i), pynvml.nvmlDeviceGetPciInfo(
            pynvml.nvmlDeviceGetHandleByIndex(j)).busId
        for link in range(18):
            try:
                if pynvml.nvmlDeviceGetNvLinkState(h, link) and \
                        pynvml.nvmlDeviceGetNvLinkRemotePciInfo(h, link).busId == other:
                    return True
            except pynvml.NVMLError:
                break
        return False
    except Exception:  # noqa: BLE001 - NVML absent or failing: unknown
        return None


def rank_bytes(cfg, tp: int, bytes_per_value: int, batch: int = 1, context: int = 2048) -> float:
    """Memory one rank needs: its weight shard, its KV cache and the replicated embeddings/LM head."""
    layer = cfg.dim * cfg.head_dim * (2 * cfg.n_heads + 2 * cfg.n_kv_heads) + 3 * cfg.dim * cfg.ffn_dim
    embed = cfg.vocab_size * cfg.dim * (1 if cfg.tie_embeddings else 2)
    kv = 2 * batch * context * cfg.n_layers * cfg.n_kv_heads * cfg.head_dim / tp
    return (cfg.n_layers * layer / tp + embed + kv) * bytes_per_value * 1.1


def largest_fit(capacity_per_rank, ranks: int, bytes_per_value: int) -> list[dict]:
    """For each preset, the smallest TP <= ranks that fits (None if none does)."""
    out = []
    for name, cfg in sorted(PRESETS.items(), key=lambda kv: kv[1].num_params()):
        fits = [t for t in cfg.valid_tp_degrees() if t <= ranks
                and rank_bytes(cfg, t, bytes_per_value) <= HEADROOM * capacity_per_rank(t)]
        out.append({"preset": name, "params_billion": round(cfg.num_params() / 1e9, 3),
                    "min_tp": min(fits) if fits else None})
    return out


def report() -> dict:
    import torch
    import torch.distributed as dist
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    gpus = [torch.cuda.get_device_properties(i) for i in range(torch.cuda.device_count())] \
        if torch.cuda.is_available() else []
    nccl = None
    if gpus and dist.is_nccl_available():
        v = torch.cuda.nccl.version()
        nccl = ".".join(map(str, v)) if isinstance(v, tuple) else str(v)
    pairs = [{"from": i, "to": j, "peer_access": torch.cuda.can_device_access_peer(i, j), "nvlink": _nvlink(i, j)}
             for i in range(len(gpus)) for j in range(len(gpus)) if i != j]
    mem = _memory_bytes()
    if gpus:
        fit = largest_fit(lambda t: min(g.total_memory for g in gpus), len(gpus), 2)
    else:
        fit = largest_fit(lambda t: mem / t, max(2, cpus), 4)
    return {"python": platform.python_version(), "torch": torch.__version__, "cpus": cpus, "memory_gib": mem / 2 ** 30,
            "gpus": [{"name": g.name, "memory_gib": g.total_memory / 2 ** 30, "sms": g.multi_processor_count}
                     for g in gpus],
            "backends": {"gloo": dist.is_gloo_available(), "nccl": bool(nccl), "nccl_version": nccl},
            "gpu_pairs": pairs, "realtime_comm_threads": _realtime_allowed(), "fits": fit,
            "largest_preset": next((f for f in reversed(fit) if f["min_tp"]), None)}


def format_report(r: dict) -> str:
    lines = [f"this machine: {r['cpus']} CPU cores, {r['memory_gib']:.0f} GiB memory; Python {r['python']}, "
             f"torch {r['torch']}"]
    if r["gpus"]:
        for i, g in enumerate(r["gpus"]):
            lines.append(f"  GPU {i}: {g['name']}, {g['memory_gib']:.0f} GiB, {g['sms']} SMs")
    else:
        lines.append("  no CUDA GPU: every lab runs on CPU ranks (gloo); the GPU labs need CUDA GPUs with NCCL "
                     "(2 or more for TP), which this machine lacks")
    b = r["backends"]
    lines.append(f"  backends: gloo {'yes' if b['gloo'] else 'NO'}, NCCL "
                 f"{'version ' + b['nccl_version'] if b['nccl'] else 'no'}")
    for p in r["gpu_pairs"]:
        nv = {True: "NVLink", False: "no NVLink", None: "NVLink unknown (pip install nvidia-ml-py)"}[p["nvlink"]]
        lines.append(f"  GPU {p['from']} -> GPU {p['to']}: peer access {'yes' if p['peer_access'] else 'NO'}, {nv}")
    lines.append("  real-time gloo communication threads (--comm-priority realtime): "
                 + ("allowed" if r["realtime_comm_threads"] else "not allowed (needs root or CAP_SYS_NICE)"))
    unit = "one GPU per rank" if r["gpus"] else "CPU ranks sharing this memory"
    fits = ", ".join(f"{f['preset']} (TP>={f['min_tp']})" for f in r["fits"] if f["min_tp"])
    lines.append(f"  presets that fit ({unit}): {fits or 'none'}")
    if r["largest_preset"]:
        lines.append(f"  largest: {r['largest_preset']['preset']} at TP={r['largest_preset']['min_tp']}")
    return "\n".join(lines)
