"""Measure this GPU for the performance model: GEMV bandwidth, GEMM efficiency by shape, a kernel's cost in a
CUDA graph. ``ladder-edu calibrate-gpu --out FILE`` writes the result as a hardware JSON (``hardware.Hardware``)
that ``ladder-edu predict --gpu FILE`` reads; the links and communication constants come from ``--base``.

* mem_eff: y = W x for one token, W 8192 x 28672 fp16 (a 70B MLP shard at TP 1; 470 MB, far beyond L2), bytes /
  time / the data-sheet bandwidth of ``--base`` (so the file keeps that GPU's peak and this one's efficiency);
* skinny_eff: the same W with 16 tokens;
* flop_eff: a 8192 x 8192 x 8192 fp16 GEMM;
* kernel_us: a CUDA graph of 2000 tiny pointwise kernels, replayed: time / 2000.
"""
from __future__ import annotations

from dataclasses import replace

from .hardware import Hardware, get_hardware


def _time(fn, iters: int = 20) -> float:
    import torch
    fn()
    torch.cuda.synchronize()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(iters):
        fn()
    end.record()
    torch.cuda.synchronize()
    return start.elapsed_time(end) / 1e3 / iters


def measure() -> dict:
    """Seconds and rates of the four micro-benchmarks on the current CUDA device."""
    import torch
    if not torch.cuda.is_available():
        raise ValueError("calibrate-gpu needs a CUDA GPU (torch.cuda.is_available() is False); on this machine "
                         "use `ladder-edu predict --gpu this-machine`, or a preset")
    dev, h = torch.device("cuda"), torch.float16
    w = torch.randn(28672, 8192, device=dev, dtype=h)
    x1, x16 = torch.randn(1, 8192, device=dev, dtype=h), torch.randn(16, 8192, device=dev, dtype=h)
    t1, t16 = _time(lambda: x1 @ w.T), _time(lambda: x16 @ w.T)
    a = torch.randn(8192, 8192, device=dev, dtype=h)
    tg = _time(lambda: a @ a, iters=10)
    small = torch.zeros(1024, device=dev)
    graph = torch.cuda.CUDAGraph()
    stream = torch.cuda.Stream()
    with torch.cuda.stream(stream):
        small.add_(1)
        with torch.cuda.graph(graph):
            for _ in range(2000):
                small.add_(1)
    tk = _time(graph.replay, iters=5) / 2000
    return {"gemv_gbps": w.numel() * 2 / t1 / 1e9, "skinny_gbps": w.numel() * 2 / t16 / 1e9,
            "gemm_tflops": 2 * 8192 ** 3 / tg / 1e12, "kernel_us": 1e6 * tk,
            "device": torch.cuda.get_device_name(dev)}


def calibrate_gpu(base: str = "h100-nvlink") -> Hardware:
    """``base`` with this GPU's measured efficiencies (relative to ``base``'s data-sheet peaks)."""
    hw, m = get_hardware(base), measure()
    eff = replace(hw.eff, mem_eff=min(1.0, m["gemv_gbps"] / hw.mem_gbps),
                  skinny_eff=min(1.0, m["skinny_gbps"] / hw.mem_gbps),
                  flop_eff=min(1.0, m["gemm_tflops"] / hw.tflops), kernel_us=m["kernel_us"])
    return replace(hw, name=f"{base} calibrated on {m['device']}", eff=eff,
                   note=f"measured by ladder-edu calibrate-gpu on {m['device']}: GEMV {m['gemv_gbps']:.0f} GB/s, "
                        f"16-token GEMM {m['skinny_gbps']:.0f} GB/s, GEMM {m['gemm_tflops']:.0f} TFLOP/s, "
                        f"kernel in a CUDA graph {m['kernel_us']:.2f} us; links from {base}")
