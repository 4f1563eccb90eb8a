"""What one all-reduce costs: NCCL's own latency/bandwidth model, with its choice of algorithm and protocol.

NCCL predicts, for every (algorithm, protocol), time = latency + bytes / algorithm bandwidth, and runs the fastest
(``src/graph/tuning.cc`` of NVIDIA/nccl, commit 5067397, 2026-06-11: ``ncclTopoTuneModel`` and
``ncclTopoGetAlgoTime``). We use the same formulas and its constants:

* latency, ring:  base + (2(n-1) - s) * hw_intra + s * hw_inter,   s = 2(nodes-1) inter-node steps
* latency, tree:  base + 2 * ((n/nodes - 1) * hw_intra + log2(nodes) * hw_inter)
* latency, NVLS:  hw_NVLS (25 us, one node; NVSwitch multicast) [+ hw_NET_NVLS per extra node]
* bus bandwidth:  the slowest link's bandwidth x its nccl-tests efficiency; LL protocol: half of it, at most
                  llMaxBw (141 GB/s on one Hopper node); LL128: x 0.92; tree: x 0.92, LL x 1/3.8, LL128 x 7/9
* algorithm bandwidth = bus bandwidth x n / (2(n-1)) for ring and NVLS, x 1/2 for tree

plus ``call_overhead`` per call (``Efficiency.comm_us``, the collective's launch, and ``skew_us`` per rank beyond
the first, the ranks' arrival apart; read off the authors' logs, ``logs.comm_us_samples``: NCCL's model leaves
both out). With NCCL_P2P_DISABLE=1 the data goes through host memory (SHM):
NCCL routes every GPU-to-GPU path through the CPU (``ncclTopoComputePaths`` in ``src/graph/paths.cc``), so it
prices the links with its PCI row and turns LL128 off (``ncclTopoTuneModel`` enables LL128 only where
``typeIntra <= PATH_NVB``). What a step through host memory really costs is fitted: ``Efficiency.shm_hop_us``, an
LL step (NCCL's PCI row says 1.0 us; the other protocols keep the row's extra latency on top); its bandwidth is
the PCIe link's (``hardware.SHM``), as for every other link. ``measured`` links (this CPU machine, gloo) use the
alpha-beta ring model instead.
"""
from __future__ import annotations

import math

from .hardware import Hardware, Link

PROTOCOLS = ("LL", "LL128", "Simple")
BASE_LAT = {"tree": (6.8, 14.0, 8.4), "ring": (6.6, 14.0, 8.4)}                # us, baseLatencies
HW_LAT = {"nvlink": {"tree": (0.6, 1.25, 4.0), "ring": (0.6, 1.9, 3.4), "nvls": 25.0},   # us, hwLatencies
          "pcie": {"tree": (1.0, 1.9, 4.0), "ring": (1.0, 2.5, 5.7)},
          "net": {"tree": (5.0, 8.5, 14.0), "ring": (2.7, 4.0, 14.0), "nvls": 18.0}}
# llMaxBws (GB/s): on one node NCCL reads the GPU's row (Volta 39.0, Ampere 87.7, Hopper 141.0); on two or more it
# reads the row of the nodes' CPU vendor (index1 = CPU vendor when nNodes > 1): Intel 39.0 / 20.4, AMD 22.5 / 19.0
# for 2 nodes / more than 2
LL_MAX_BW_NODES = {"intel": (39.0, 20.4), "amd": (22.5, 19.0)}


def ll_max_bw(hw: Hardware, nodes: int) -> float:
    """NCCL's cap on the LL protocol's bandwidth (GB/s) for ``nodes`` nodes of ``hw``."""
    if nodes <= 1:
        return hw.ll_max_gbps
    return LL_MAX_BW_NODES[hw.cpu_vendor][0 if nodes <= 2 else 1]
NVLS_EFF = 0.85                                 # nvlsEfficiency, Hopper


def _hop(link: Link, algo: str, p: int, shm_hop_us: float | None) -> float:
    """Latency of one step (us). SHM: NCCL's PCI row (what NCCL believes, ``shm_hop_us=None``), or that row
    shifted so that an LL step takes ``shm_hop_us`` (what it costs: the detour through host memory adds the same
    delay to a step of any protocol)."""
    if link.kind == "shm" and shm_hop_us is not None:
        row = HW_LAT["pcie"][algo]
        return row[p] + shm_hop_us - row[0]
    return HW_LAT["pcie" if link.kind == "shm" else link.kind][algo][p]


def _bus_gbps(link: Link) -> float:
    return link.gbps * link.bus_eff


def candidates(hw: Hardware, n: int, nbytes: float, nodes: int = 1,
               believed: bool = False) -> dict[tuple[str, str], float]:
    """Seconds for each (algorithm, protocol) NCCL considers for an all-reduce of ``nbytes`` on n ranks: what they
    cost, or (``believed``) what NCCL's tuner thinks they cost (it takes host-memory SHM for PCIe)."""
    e, intra = hw.eff, hw.intra
    hop_us = None if believed else e.shm_hop_us
    if nodes > 1 and hw.inter is None:
        raise ValueError(f"{hw.name} has no network between nodes; valid: --nodes 1")
    ppn = n // nodes
    inter = hw.inter if nodes > 1 else None
    bus = min(_bus_gbps(intra) if ppn > 1 else math.inf, _bus_gbps(inter) if inter else math.inf)
    ll_max = ll_max_bw(hw, nodes)
    out = {}
    for p, proto in enumerate(PROTOCOLS):
        if proto == "LL128" and intra.kind == "shm":        # NCCL enables LL128 only over NVLink paths
            continue
        # ring: 2(n-1) steps, 2(nodes-1) of them cross the network
        s = 2 * (nodes - 1)
        lat = BASE_LAT["ring"][p] + (2 * (n - 1) - s) * _hop(intra, "ring", p, hop_us) \
            + s * (_hop(inter, "ring", p, hop_us) if inter else 0.0)
        bw = {0: min(ll_max, 0.5 * bus), 1: 0.92 * bus, 2: bus}[p]
        out["ring", proto] = 1e-6 * lat + nbytes / (1e9 * bw * n / (2 * (n - 1)))
        # tree: up and down a chain inside each node and a log-depth tree across nodes
        if n > 2:
            lat = BASE_LAT["tree"][p] + 2 * ((ppn - 1) * _hop(intra, "tree", p, hop_us)
                                             + math.log2(nodes) * (_hop(inter, "tree", p, hop_us) if inter else 0))
            bw = {0: min(0.92 * bus / 3.8, ll_max), 1: 0.92 * bus * (7 / 9 if nodes == 1 else 120 / 128),
                  2: 0.92 * bus}[p]
            out["tree", proto] = 1e-6 * lat + nbytes / (1e9 * bw * 0.5)
    if intra.nvls and ppn > 2:                  # NVLink SHARP: one node, or NVLS-tree across nodes
        lat = HW_LAT["nvlink"]["nvls"] + (2 * math.log2(nodes) * HW_LAT["net"]["nvls"] if nodes > 1 else 0.0)
        bw = min(2 * NVLS_EFF * intra.gbps * intra.bus_eff, _bus_gbps(inter) * 2 if inter else math.inf)
        out["nvls", "Simple"] = 1e-6 * lat + nbytes / (1e9 * bw * n / (2 * (n - 1)))
    return out


def allreduce_time(hw: Hardware, n: int, nbytes: float, nodes: int = 1) -> tuple[float, str]:
    """(seconds, "algorithm/protocol") of one all-reduce of ``nbytes`` over n ranks on ``nodes`` nodes, as NCCL
    would pick it, plus ``call_overhead``. 0 for n = 1."""
    if n <= 1:
        return 0.0, "none"
    if hw.intra.kind == "measured":
        t = (n - 1) * hw.intra.hop_us * 1e-6 + 2 * (n - 1) / n * nbytes / (1e9 * hw.intra.gbps)
        return t + 1e-6 * hw.eff.comm_us, "ring (alpha-beta, measured)"
    believed = candidates(hw, n, nbytes, nodes, believed=True)
    algo, proto = min(believed, key=believed.get)             # NCCL picks by its own model ...
    t = candidates(hw, n, nbytes, nodes)[algo, proto]         # ... and pays what the choice really costs
    return t + call_overhead(hw, n), f"{algo}/{proto}"


def launched_on_gpu(hw: Hardware) -> bool:
    """Whether ``hw``'s all-reduces are kernels launched on GPUs, each call costing the compute stream ``comm_us``
    (whatever the implementation: NCCL's, a one-shot kernel, a fixed latency); not on a CPU's measured link."""
    return hw.intra.kind != "measured"


def call_overhead(hw: Hardware, n: int) -> float:
    """Seconds one all-reduce call adds beyond the algorithm's own time, on a GPU: its launch (``comm_us``) and
    the wait for the last of n ranks to arrive (``skew_us`` per rank beyond the first)."""
    return 1e-6 * (hw.eff.comm_us + hw.eff.skew_us * (n - 1))


def ring_allreduce_time(n: int, nbytes: float, alpha_s: float, bandwidth: float) -> float:
    """The textbook ring all-reduce of ``nbytes`` over n ranks: a reduce-scatter then an all-gather, each n-1 steps;
    at every step each rank sends one chunk of nbytes/n to its neighbour over its own link, so

        T = 2(n-1) (alpha + nbytes / (n * bandwidth)) = 2(n-1) alpha + 2(n-1)/n * nbytes / bandwidth

    (alpha: seconds per step, ``bandwidth``: bytes per second of one link). A rank sends 2(n-1)/n of the message in
    all, so the bytes term hardly grows with n while the latency term grows linearly: small (decode) messages
    are latency-bound. 0 for n = 1."""
    if n <= 1:
        return 0.0
    return 2 * (n - 1) * (alpha_s + nbytes / (n * bandwidth))


class RingLink:
    """A link for ``emulate.ModeledGroup``: every all-reduce a ring over ``n`` ranks at ``alpha_us`` per step and
    ``gbps`` GB/s per link (``ring_allreduce_time``)."""

    def __init__(self, n: int, alpha_us: float, gbps: float):
        if n < 2 or alpha_us < 0 or gbps <= 0:
            raise ValueError(f"a ring link needs n >= 2, alpha_us >= 0 and gbps > 0; got n={n}, "
                             f"alpha_us={alpha_us}, gbps={gbps}")
        self.n, self.alpha_us, self.gbps = n, alpha_us, gbps

    def __call__(self, nbytes: int) -> float:
        return ring_allreduce_time(self.n, nbytes, 1e-6 * self.alpha_us, 1e9 * self.gbps)

    def __str__(self) -> str:
        return f"a ring of {self.n} at {self.alpha_us:g} us per step and {self.gbps:g} GB/s"
