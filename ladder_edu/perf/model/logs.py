"""The Ladder authors' raw benchmark logs: every variant of Llama-3-8B (TP 1, 2, 4, 8) and Llama-3-70B (TP 4, 8),
batch 1 to 64, decode and prefill timed apart, on the H100 NVLink machine behind the paper's 70B table.

Source: ``mayank31398/ladder-residual-inference``, folder ``final-results-512/`` (gpt-fast with
``torch.compile(decode_one_token, mode="reduce-overhead", fullgraph=True)``, CUDA graphs, bf16, prompt 1024 tokens,
512 new tokens), transcribed in the project's notes (papers.md 1.8b). Each cell is (decode ms per step = "Average
decode latency" / 512, prefill ms of the 1024-token prompt, tokens/s as logged). Variants: standard (``dense``),
ladder, parallel, ``sync_drop`` (the authors' ``ensemble``: the attention's all-reduce dropped, one per layer after
the MLP; a different function, like SPD's sync-point drop) and upper_bound (no all-reduce). A cell the logs lack
is absent.

``exposed_per_allreduce``, ``hidden_fraction`` and ``unhidden_per_allreduce`` read the facts small models need off
these numbers: what one all-reduce inside a CUDA graph costs the step ((standard - upper bound) / all-reduces), how
much of it ladder hides ((standard - ladder) / (standard - upper bound)), and what ladder leaves per all-reduce
((ladder - upper bound) / all-reduces).
"""
from __future__ import annotations

from ...models.registry import BASELINE, CEILING, LADDER

SYNC_DROP = "sync_drop"      # the authors' one-all-reduce-per-layer variant: in their logs, not a model here

LOGS = {
    "llama-3-8b": {
        (1, 1): {"standard": (6.26, 51.4, 157.11), "ladder": (6.307, 51.5, 155.94), "parallel": (6.06, 50.3, 162.28), "sync_drop": (6.229, 50.9, 157.91), "upper_bound": (6.227, 50.9, 157.96)},
        (1, 4): {"standard": (7.77, 197.2, 490.21), "ladder": (7.82, 197.4, 487.15), "parallel": (7.793, 196.5, 488.86), "sync_drop": (7.69, 197.0, 495.09), "upper_bound": (7.599, 196.7, 500.77)},
        (1, 8): {"standard": (8.508, 390.6, 862.48), "ladder": (8.552, 391.6, 858.2), "parallel": (8.425, 388.4, 870.66), "sync_drop": (8.462, 390.1, 866.9), "upper_bound": (8.338, 390.3, 878.63)},
        (1, 16): {"standard": (10.256, 788.3, 1355.73), "ladder": (10.395, 788.1, 1340.1), "parallel": (10.214, 780.0, 1362.49), "sync_drop": (10.198, 787.2, 1362.86), "upper_bound": (10.125, 788.1, 1371.17)},
        (1, 32): {"standard": (13.223, 1626.3, 1950.36), "ladder": (13.315, 1629.5, 1938.86), "parallel": (13.449, 1611.7, 1927.29), "sync_drop": (13.183, 1631.9, 1954.18), "upper_bound": (13.073, 1630.9, 1967.65)},
        (1, 64): {"standard": (19.345, 3390.4, 2463.89), "ladder": (19.44, 3391.4, 2454.69), "parallel": (19.368, 3229.5, 2491.77), "sync_drop": (19.295, 3385.5, 2469.91), "upper_bound": (19.182, 3386.9, 2480.49)},
        (2, 1): {"standard": (4.41, 33.2, 223.28), "ladder": (3.904, 31.5, 251.94), "parallel": (3.924, 30.0, 250.83), "sync_drop": (4.048, 30.1, 243.3), "upper_bound": (3.766, 28.0, 261.48)},
        (2, 4): {"standard": (5.769, 116.0, 666.73), "ladder": (5.332, 113.0, 719.81), "parallel": (5.35, 112.0, 717.66), "sync_drop": (5.368, 111.6, 715.51), "upper_bound": (4.85, 105.2, 790.51)},
        (2, 8): {"standard": (6.277, 225.4, 1190.35), "ladder": (5.731, 217.4, 1298.82), "parallel": (5.842, 215.5, 1276.62), "sync_drop": (5.866, 217.1, 1271.15), "upper_bound": (5.345, 206.1, 1391.13)},
        (2, 16): {"standard": (7.03, 444.1, 2024.89), "ladder": (6.46, 434.1, 2188.42), "parallel": (6.593, 428.0, 2152.68), "sync_drop": (6.643, 428.8, 2137.87), "upper_bound": (6.106, 409.7, 2315.41)},
        (2, 32): {"standard": (8.826, 929.1, 3006.18), "ladder": (8.188, 907.4, 3211.29), "parallel": (8.397, 862.9, 3172.48), "sync_drop": (8.344, 903.2, 3164.78), "upper_bound": (7.814, 860.2, 3369.02)},
        (2, 64): {"standard": (12.063, 1892.0, 4060.03), "ladder": (11.424, 1845.0, 4257.75), "parallel": (11.303, 1847.3, 4291.16), "sync_drop": (11.506, 1835.2, 4239.9), "upper_bound": (10.861, 1753.0, 4478.93)},
        (4, 1): {"standard": (3.733, 23.8, 264.32), "ladder": (2.982, 22.7, 329.98), "parallel": (3.026, 19.9, 325.88), "sync_drop": (3.169, 21.4, 311.07), "upper_bound": (2.707, 18.1, 363.96)},
        (4, 4): {"standard": (4.489, 70.8, 863.68), "ladder": (3.603, 63.9, 1071.69), "parallel": (3.706, 64.8, 1042.63), "sync_drop": (3.931, 66.0, 984.34), "upper_bound": (3.304, 58.1, 1169.29)},
        (4, 8): {"standard": (4.866, 138.3, 1556.2), "ladder": (3.997, 128.6, 1881.45), "parallel": (4.059, 129.0, 1853.93), "sync_drop": (4.321, 129.5, 1747.32), "upper_bound": (3.702, 115.8, 2034.36)},
        (4, 16): {"standard": (5.319, 272.9, 2732.49), "ladder": (4.449, 255.7, 3230.18), "parallel": (4.499, 246.0, 3210.62), "sync_drop": (4.78, 254.6, 3029.85), "upper_bound": (4.131, 234.1, 3484.12)},
        (4, 32): {"standard": (6.115, 537.5, 4463.98), "ladder": (5.273, 506.2, 5107.23), "parallel": (5.598, 484.3, 4887.08), "sync_drop": (5.592, 504.1, 4863.17), "upper_bound": (4.878, 463.3, 5530.27)},
        (4, 64): {"standard": (8.134, 1053.7, 6277.04), "ladder": (7.343, 1021.1, 6850.47), "parallel": (7.183, 979.1, 7033.07), "sync_drop": (7.526, 988.9, 6764.74), "upper_bound": (6.748, 913.6, 7497.33)},
        (8, 1): {"standard": (3.547, 19.1, 278.63), "ladder": (2.489, 17.2, 395.71), "parallel": (2.652, 19.0, 371.29), "sync_drop": (2.849, 15.4, 346.93), "upper_bound": (2.094, 11.9, 471.34)},
        (8, 4): {"standard": (4.333, 49.8, 902.02), "ladder": (2.975, 47.2, 1301.53), "parallel": (3.281, 42.4, 1187.59), "sync_drop": (3.561, 46.8, 1094.0), "upper_bound": (2.68, 35.1, 1453.31)},
        (8, 8): {"standard": (4.495, 89.5, 1711.69), "ladder": (3.11, 76.5, 2451.09), "parallel": (3.413, 78.1, 2241.47), "sync_drop": (3.712, 78.3, 2068.22), "upper_bound": (2.841, 66.6, 2688.78)},
        (8, 16): {"standard": (4.827, 171.1, 3097.47), "ladder": (3.476, 149.4, 4242.27), "parallel": (3.687, 151.1, 4013.17), "sync_drop": (4.061, 151.3, 3669.1), "upper_bound": (3.162, 132.4, 4671.53)},
        (8, 32): {"standard": (5.298, 330.5, 5379.93), "ladder": (3.949, 303.8, 7037.26), "parallel": (4.272, 294.4, 6596.88), "sync_drop": (4.565, 295.6, 6217.23), "upper_bound": (3.616, 259.7, 7752.98)},
        (8, 64): {"standard": (6.178, 656.7, 8573.7), "ladder": (4.871, 603.8, 10566.79), "parallel": (5.021, 586.6, 10370.73), "sync_drop": (5.436, 590.3, 9706.93), "upper_bound": (4.432, 523.5, 11725.08)},
    },
    "llama-3-70b": {
        (4, 1): {"standard": (16.588, 122.3, 59.41), "ladder": (14.57, 121.6, 67.51), "parallel": (15.046, 117.6, 65.4), "sync_drop": (15.27, 115.3, 64.52), "upper_bound": (14.279, 103.1, 69.04)},
        (4, 4): {"standard": (20.728, 448.6, 185.01), "ladder": (18.746, 424.3, 204.3), "parallel": (19.004, 424.5, 201.62), "sync_drop": (19.302, 422.0, 198.7), "upper_bound": (17.962, 383.3, 213.73)},
        (4, 8): {"standard": (22.125, 866.8, 335.81), "ladder": (19.802, 828.9, 373.33), "parallel": (20.388, 833.7, 363.29), "sync_drop": (20.628, 822.6, 359.73), "upper_bound": (19.087, 753.1, 389.03)},
        (4, 16): {"standard": (23.96, 1727.6, 585.23), "parallel": (22.196, 1672.5, 628.23), "sync_drop": (22.66, 1671.8, 617.06), "upper_bound": (21.056, 1534.3, 665.07)},
        (4, 32): {"standard": (29.4, 3492.9, 883.27), "ladder": (27.427, 3347.4, 941.96), "parallel": (27.995, 3284.4, 929.75), "sync_drop": (27.81, 3337.0, 932.06), "upper_bound": (25.448, 3095.3, 1015.91)},
        (8, 1): {"standard": (12.756, 81.2, 77.39), "ladder": (9.721, 76.5, 101.22), "parallel": (10.455, 76.8, 94.22), "sync_drop": (10.811, 71.2, 91.25), "upper_bound": (8.928, 56.4, 110.59)},
        (8, 4): {"standard": (14.953, 259.9, 258.56), "ladder": (11.603, 233.7, 331.45), "parallel": (12.547, 232.9, 307.34), "sync_drop": (12.916, 235.3, 298.86), "upper_bound": (10.835, 205.6, 355.8)},
        (8, 8): {"standard": (15.851, 501.8, 475.04), "parallel": (13.493, 455.5, 555.88), "sync_drop": (13.848, 458.6, 542.26), "upper_bound": (11.584, 404.6, 646.18)},
        (8, 16): {"standard": (17.025, 995.1, 843.15), "parallel": (14.627, 919.6, 973.74), "sync_drop": (14.913, 916.5, 957.31), "upper_bound": (12.829, 811.8, 1109.65)},
        (8, 32): {"standard": (20.458, 2008.6, 1312.26), "ladder": (17.059, 1805.0, 1554.07), "parallel": (17.843, 1851.9, 1490.86), "sync_drop": (18.346, 1854.9, 1456.34), "upper_bound": (15.519, 1675.0, 1702.48)},
        (8, 64): {"standard": (24.37, 4060.3, 1980.92), "ladder": (21.089, 3693.7, 2260.25), "parallel": (21.119, 3610.4, 2271.16), "sync_drop": (21.941, 3750.9, 2186.12), "upper_bound": (19.354, 3352.7, 2470.39)},
    },
}
"""{model: {(tp, batch): {variant: (decode ms per step, prefill ms, tokens/s)}}}"""

DECODE, PREFILL, TOKENS = 0, 1, 2


def cells(models=("llama-3-8b", "llama-3-70b"), tps=None, batches=None):
    """[(model, tp, batch, {variant: cell})] of the logs, optionally only some TP degrees and batch sizes."""
    return [(m, tp, b, row) for m in models for (tp, b), row in LOGS[m].items()
            if (tps is None or tp in tps) and (batches is None or b in batches)]


def exposed_per_allreduce(model: str, tp: int, batch: int, variant: str = BASELINE) -> float:
    """Seconds one all-reduce adds to a decode step: (variant - upper bound) / its all-reduces per step (2 per layer
    for standard and ladder, 1 for sync_drop)."""
    from ...models.config import get_config
    row = LOGS[model][tp, batch]
    per_layer = {BASELINE: 2, LADDER: 2, SYNC_DROP: 1}[variant]
    return 1e-3 * (row[variant][DECODE] - row[CEILING][DECODE]) / (per_layer * get_config(model).n_layers)


def hidden_fraction(model: str, tp: int, batch: int) -> float:
    """The share of standard's communication time ladder hides: (standard - ladder) / (standard - upper bound)."""
    row = LOGS[model][tp, batch]
    s, lad, u = row[BASELINE][DECODE], row[LADDER][DECODE], row[CEILING][DECODE]
    return (s - lad) / (s - u)


def _model_allreduce_s(hw, model: str, tp: int, batch: int) -> float:
    """NCCL's model of one decode all-reduce of ``model`` at TP ``tp`` (``nccl.allreduce_time`` with
    no call overhead: NCCL's own latency and bandwidth, nothing else)."""
    from ...models.config import get_config
    from .nccl import allreduce_time
    cfg = get_config(model)
    return allreduce_time(hw.with_(comm_us=0.0, skew_us=0.0), tp, batch * cfg.dim * hw.bytes_per_param)[0]


def _copy_kernel_s(hw, model: str, batch: int) -> float:
    """The kernel that copies a module's output into the collective's buffer (``perfmodel.allreduce_copy_s``)."""
    from ...models.config import get_config
    from .perfmodel import allreduce_copy_s
    return allreduce_copy_s(hw, batch * get_config(model).dim * hw.bytes_per_param)


def allreduce_parts(hw, model: str, tp: int, batch: int) -> dict[str, float]:
    """One all-reduce in standard's step, in microseconds: what the logs show (``exposed_per_allreduce``) beside the
    model's parts: NCCL's own model, the call's cost (``comm_us``), the wait for the last rank (``skew_us``) and the
    copy into the collective's buffer."""
    return {"logs": 1e6 * exposed_per_allreduce(model, tp, batch), "nccl": 1e6 * _model_allreduce_s(hw, model, tp, batch),
            "call": hw.eff.comm_us, "skew": hw.eff.skew_us * (tp - 1), "copy": 1e6 * _copy_kernel_s(hw, model, batch)}


def comm_us_samples(hw, data=None) -> list[tuple[int, float]]:
    """Per logged cell (TP >= 2), (TP, the microseconds one all-reduce costs a standard step beyond NCCL's own
    model and its buffer copy): exposed per all-reduce - NCCL's time - the copy kernel. ``logfit.calibrate`` reads
    ``Efficiency.comm_us`` (the collective's launch) and ``skew_us`` (per rank beyond the first: the ranks arriving
    apart) off their line over TP - 1."""
    parts = [(tp, allreduce_parts(hw, m, tp, b)) for m, tp, b, _ in (data or cells()) if tp > 1]
    return [(tp, p["logs"] - p["nccl"] - p["copy"]) for tp, p in parts]


def unhidden_per_allreduce(model: str, tp: int, batch: int) -> float:
    """Seconds per all-reduce that ladder leaves on its step: (ladder - upper bound) / all-reduces per step. About
    4-6 us at every TP from batch 4 on (2-6 us at batch 1), however long the all-reduce: a cost the compute stream
    pays per call (``perfmodel.allreduce_lanes``), not a share of the collective."""
    return exposed_per_allreduce(model, tp, batch, LADDER)
