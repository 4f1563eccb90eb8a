"""All-reduce implementations a deployment can choose (``Deployment.allreduce``), each with a sourced latency.

Besides NCCL (``nccl.allreduce_time``: its tuner's algorithm and protocol), inference engines run their own
intra-node kernels over NVLink peer access (field notes section 9; docs/references.md, "Systems alternatives"):

* **one-shot**: every rank reads all n-1 peers' buffers and reduces locally in one step:
  t = L + (n-1) B / bw (each rank pulls (n-1) B over its links). L = 10.7 us: a Triton one-shot all-reduce took
  10.8 us at 8 KB on 8 H100s (yifuwang/symm-mem-recipes), of which the bytes take 0.1 us.
* **two-shot**: a reduce-scatter and an all-gather, each one step over peer access:
  t = L + 2 (n-1)/n B / bw. L = 12.5 us: 15 us at 512 KiB on 8 H100s (vLLM issue 42324), less its 2.5 us of bytes.
* **nvls**: NVLink SHARP multimem (the NVSwitch reduces): t = L + 2 (n-1)/n B / (2 nvls_bw). L = 9.9 us: 11 us at
  512 KiB on 8 H100s (vLLM issue 42324, multimem), less its bytes.

``fixed_allreduce(L)`` is any all-reduce of latency L whatever its size (the curve of notebook 06).

bw is the intra-node link's bandwidth x its bus efficiency (``hardware.Link``). An engine uses such a kernel only
where it beats NCCL (vLLM and SGLang choose by message size), so each implementation takes the faster of its
kernel and NCCL for every message: small decode messages go to the kernel, a prefill's megabytes to NCCL. These
kernels run inside one node on NVLink; asking for one across nodes or without NVLink raises a ValueError naming
the valid choices.
"""
from __future__ import annotations

from .hardware import Hardware
from .nccl import allreduce_time

LATENCY_US = {"one-shot": 10.7, "two-shot": 12.5, "nvls": 9.9}


def _check(name: str, hw: Hardware, nodes: int) -> None:
    if nodes > 1 or hw.intra.kind != "nvlink" or (name == "nvls" and not hw.intra.nvls):
        raise ValueError(f"the {name} all-reduce runs inside one NVLink node{' with NVSwitch multicast' if name == 'nvls' else ''}; "
                         f"{hw.name} on {nodes} node(s) needs: nccl")


def one_shot(hw: Hardware, n: int, nbytes: float, nodes: int = 1) -> tuple[float, str]:
    if n <= 1:
        return 0.0, "none"
    _check("one-shot", hw, nodes)
    return 1e-6 * LATENCY_US["one-shot"] + (n - 1) * nbytes / (1e9 * hw.intra.gbps * hw.intra.bus_eff), "one-shot"


def two_shot(hw: Hardware, n: int, nbytes: float, nodes: int = 1) -> tuple[float, str]:
    if n <= 1:
        return 0.0, "none"
    _check("two-shot", hw, nodes)
    bw = 1e9 * hw.intra.gbps * hw.intra.bus_eff
    return 1e-6 * LATENCY_US["two-shot"] + 2 * (n - 1) / n * nbytes / bw, "two-shot"


def nvls(hw: Hardware, n: int, nbytes: float, nodes: int = 1) -> tuple[float, str]:
    if n <= 1:
        return 0.0, "none"
    _check("nvls", hw, nodes)
    return 1e-6 * LATENCY_US["nvls"] + 2 * (n - 1) / n * nbytes / (2e9 * hw.intra.nvls), "nvls"


def _or_nccl(kernel):
    """``kernel`` where it is faster than NCCL's choice for the message, else NCCL's."""
    def choose(hw: Hardware, n: int, nbytes: float, nodes: int = 1) -> tuple[float, str]:
        own, theirs = kernel(hw, n, nbytes, nodes), allreduce_time(hw, n, nbytes, nodes)
        return own if own[0] <= theirs[0] else theirs
    choose.__name__ = kernel.__name__
    return choose


def fixed_allreduce(latency_us: float):
    """An all-reduce implementation (``Deployment.allreduce``) that takes ``latency_us`` whatever the size: the
    latency-bound regime of a decode all-reduce."""
    if latency_us < 0:
        raise ValueError(f"an all-reduce latency must be >= 0 us, got {latency_us}")

    def allreduce(hw: Hardware, n: int, nbytes: float, nodes: int = 1) -> tuple[float, str]:
        return (1e-6 * latency_us if n > 1 else 0.0), f"fixed {latency_us:g} us"
    return allreduce


IMPLEMENTATIONS = {"nccl": allreduce_time, "one-shot": _or_nccl(one_shot), "two-shot": _or_nccl(two_shot),
                   "nvls": _or_nccl(nvls)}
