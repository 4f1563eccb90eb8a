"""Hardware for the performance model: data-sheet peaks, interconnects, and measured and fitted efficiencies.

Every constant has a source next to it. Three kinds:

* **data sheet**: peak HBM bandwidth, peak dense 16-bit tensor FLOP/s, link bandwidth per direction (vendor pages);
* **NCCL**: the latency/bandwidth model NCCL itself uses to pick an algorithm (``nccl.py``, from NCCL's
  ``src/graph/tuning.cc``), and bus-bandwidth efficiencies reported by nccl-tests;
* **measured** on an H100 80GB HBM3 SXM with ``ladder-edu calibrate-gpu --detail`` (``docs/gpu/run.sh``; rows in
  ``docs/gpu/h100/projections.json``, fitted by ``gpu_preset.fit_projections``; a second machine gave the same to
  1%): a GEMV's fixed cost ``kernel_us`` (``MEASURED`` lists what calibrate-gpu measures; ``docs/gpu/h100/h100.json``
  holds all five of its single-kernel numbers);
* **from the authors' logs** (``FROM_LOGS``): the rest of the step without communication (``stepfit.py``) and
  the cost of an all-reduce call beyond NCCL's model (``logfit.py``), read off every variant of 8B and 70B the
  Ladder authors timed on the H100 NVLink machine behind the paper's table;
* **fitted** (``fit.py``): three communication numbers neither gives (the compute slow-down beside a large
  all-reduce, with and without NVLink, and a step through host memory), each bounded to a physically plausible
  range (``BOUNDS``), fitted on the Ladder paper's Llama-3-70B table only (docs/references.md) and reported with
  their spread over cross-validation folds.

The H200 preset has its own single-kernel compute constants (``docs/gpu/h200``; no logs exist for it); A100, A800
and RTX 4090 reuse the H100's (same software stack; no such GPU was lent to measure), and only their data-sheet
numbers differ.

A ``Hardware`` is a GPU type, the link inside a node, the network between nodes, and the efficiencies.
``Hardware.to_json`` / ``load_hardware(path)`` round-trip it, so ``calibrate-gpu`` can write a preset file that
``ladder-edu predict --gpu FILE`` reads.
"""
from __future__ import annotations

import json
import math
import os

from ...util import atomic
from dataclasses import asdict, dataclass, field, fields, replace


@dataclass(frozen=True)
class Efficiency:
    """The model's efficiencies, each with its physical meaning and source (bounds in ``BOUNDS``): measured with
    ``calibrate-gpu`` on an H100 (docs/gpu/h100), calibrated on the authors' logs, or fitted to the paper's 70B
    table; ``ladder-edu predict --validate`` recalibrates and refits them and prints the cross-validation."""

    # the step without communication: calibrated on the authors' logs of gpt-fast's compiled step on H100s
    # (``stepfit.calibrate_step``: every no-all-reduce cell of 8B at TP 1-8 and 70B at TP 4/8, batch 1-64); the
    # same constants measured on single kernels of an H100 (``calibrate-gpu``) are in docs/gpu/h100/h100.json
    mem_eff: float = 0.95          # fraction of peak HBM bandwidth a weight-streaming GEMV (one token) reaches
    skinny_eff: float = 0.866      # the same for a skinny GEMM (4-64 tokens)
    flop_eff: float = 0.395        # fraction of peak tensor FLOP/s gpt-fast's prefill (1024 tokens) reaches
    kernel_us: float = 3.417       # fixed time of one GEMV kernel inside a CUDA graph (launch slot, ramp, tail):
    #                                measured on single kernels of an H100 (the logs cannot tell it from small_us)
    skinny_us: float = 7.25        # the same for a skinny GEMM (tiles, split-K reduction)
    small_us: float = 2.249        # fixed time of any other kernel (norm, rotary, SiLU, cache write, attention,
    #                                sampling) and the gap before it
    kv_repeat: float = 0.717       # share of a K/V head's query heads that read its cache from HBM (0: once per
    #                                K/V head; 1: once per query head, gpt-fast's repeat_interleave without L2 hits)
    # an all-reduce call, calibrated on the authors' logs (``logfit.calibrate``: standard against no all-reduce)
    comm_us: float = 3.133         # per all-reduce beyond NCCL's own latency and its buffer copy: its launch and
    #                                the dependency edges between streams, paid on the compute stream
    skew_us: float = 0.501         # per all-reduce and per rank beyond the first: the ranks arrive apart, and the
    #                                collective waits for the last of them
    # fitted on the paper's 70B table (cross-validation spread in docs/performance-model.md)
    interference: float = 0.238    # compute slow-down while an NCCL kernel runs beside it (SMs, HBM it takes)
    shm_interference: float = 0.591  # the same through host memory (P2P disabled: the copies hold SMs far longer)
    shm_hop_us: float = 2.497      # NCCL_P2P_DISABLE=1: latency of one LL ring step through host memory (SHM)


# Physically plausible ranges; a fitted value at a bound would mean the model misses something. Measured values
# must fall inside theirs too (a calibrate-gpu file outside them is worth a second look).
BOUNDS = {
    "mem_eff": (0.60, 0.95),       # GEMV kernels reach 70-92% of HBM peak (cuBLAS / Triton GEMV benchmarks)
    "skinny_eff": (0.40, 0.95),    # small-M GEMMs waste bandwidth on tiles sized for M >= 16-64 (wave quantisation)
    "flop_eff": (0.30, 0.85),      # dense fp16 GEMMs alone reach 55-80% of the H100's 989 TFLOP/s data-sheet peak;
    #                                a whole prefill with unfused math attention less
    "kernel_us": (0.3, 6.0),       # CUDA graphs cut launch to ~1-2 us per node, and hide most of it behind the
    #                                previous kernel's tail; a kernel adds 0-3 us ramp/tail
    "skinny_us": (0.3, 10.0),      # a GEMM tile kernel adds a split-K reduction or a second wave
    "small_us": (0.5, 6.0),        # a tiny kernel in a CUDA graph: ~1 us; a reduction over d values: 3-5 us
    "kv_repeat": (0.0, 1.0),       # GQA: each query head re-reads its K/V head (1) or the reads hit L2 (0)
    "comm_us": (0.0, 30.0),        # a launch slot and an event wait between streams (2-5 us)
    "skew_us": (0.0, 5.0),         # kernels of the same step end within a few us of each other on each rank
    "interference": (0.0, 0.8),    # at full size NCCL holds 16-32 of 132 SMs and some HBM bandwidth
    "shm_interference": (0.0, 0.8),  # SHM copies go through PCIe at a fraction of HBM speed, on the same SMs
    "shm_hop_us": (1.0, 40.0),     # NCCL's PCI table says 1.0 us per LL hop; host-memory SHM is slower
}
def squash(name: str, z: float) -> float:
    """A free number z mapped into ``name``'s physical range ``BOUNDS[name]`` (a logistic), as the fits search."""
    lo, hi = BOUNDS[name]
    return lo + (hi - lo) / (1 + math.exp(-max(-30.0, min(30.0, z))))


def unsquash(name: str, value: float) -> float:
    """The z that ``squash`` maps to ``value`` (clipped just inside the range)."""
    lo, hi = BOUNDS[name]
    u = min(max((value - lo) / (hi - lo), 1e-6), 1 - 1e-6)
    return math.log(u / (1 - u))


AT_BOUND = ("mem_eff",)
"""Constants the calibration leaves at a bound, each named in docs/performance-model.md ("What the model gets
wrong"): the logs' 70B step streams its weights as if GEMVs reached 97% of the data-sheet bandwidth (8B alone: 94%),
beyond what a GEMV reaches on its own."""


@dataclass(frozen=True)
class Link:
    """How GPUs talk: inside a node (``nvlink``, ``pcie`` with peer access, ``shm`` = P2P disabled, through host
    memory) or between nodes (``net``: InfiniBand/RoCE NICs), or ``measured`` (this machine: alpha-beta)."""

    kind: str
    gbps: float                    # per GPU, per direction (GB/s)
    bus_eff: float = 0.8           # nccl-tests bus bandwidth / gbps at large messages
    nvls: float = 0.0              # NVLink GB/s per direction NVLink SHARP can use (NVSwitch multicast); 0: none
    hop_us: float = 0.0            # kind "measured" only: latency per ring step
    source: str = ""


@dataclass(frozen=True)
class Hardware:
    """One GPU type, its intra-node link, the network between nodes, and the fitted efficiencies."""

    name: str
    mem_gbps: float                # peak HBM bandwidth per GPU (GB/s), data sheet
    tflops: float                  # peak dense 16-bit tensor TFLOP/s per GPU, data sheet
    intra: Link                    # between the GPUs of one node
    inter: Link | None = None      # between nodes (None: single node only)
    gpus_per_node: int = 8
    eff: Efficiency = field(default_factory=Efficiency)
    bytes_per_param: int = 2       # fp16/bf16 weights and activations, as the papers ran
    note: str = ""
    ll_max_gbps: float = 141.0     # NCCL's LL bandwidth cap on one node, its GPU row (Hopper 141.0, Ampere 87.7)
    cpu_vendor: str = "intel"      # the nodes' CPUs: NCCL's LL cap across nodes reads their row ("intel", "amd")

    def __post_init__(self):
        if self.cpu_vendor not in ("intel", "amd"):
            raise ValueError(f"cpu_vendor {self.cpu_vendor!r} is not one NCCL tunes for; valid: intel, amd")

    def with_(self, **changes) -> "Hardware":
        """A copy with fields changed; efficiency fields (``mem_eff=...``) and ``link_gbps`` are accepted too."""
        eff = {k: changes.pop(k) for k in list(changes) if k in EFF_FIELDS}
        if "link_gbps" in changes:
            changes["intra"] = replace(self.intra, gbps=changes.pop("link_gbps"))
        out = replace(self, **changes)
        return replace(out, eff=replace(out.eff, **eff)) if eff else out

    @property
    def link_gbps(self) -> float:
        return self.intra.gbps

    def to_json(self, path: str) -> None:
        atomic.write_json(path, asdict(self), indent=2)


EFF_FIELDS = tuple(f.name for f in fields(Efficiency))
MEASURED = ("mem_eff", "skinny_eff", "flop_eff", "kernel_us", "small_us")
"""Measured on a GPU (``ladder-edu calibrate-gpu``); for the H100 presets all but ``kernel_us`` come from the logs
(``FROM_LOGS``), and what neither gives is fitted (``perf.model.fit.PARAMS``)."""
STEP_FROM_LOGS = ("skinny_us", "small_us", "mem_eff", "skinny_eff", "kv_repeat", "flop_eff")
"""The step without communication, calibrated on the no-all-reduce cells of the authors' logs (``stepfit.py``)."""
FROM_LOGS = STEP_FROM_LOGS + ("comm_us", "skew_us")
"""Calibrated on the Ladder authors' per-variant logs (``logfit.calibrate``), not on the paper's table; for the H100
presets they replace the single-kernel measurements of the same names."""
MEANING = {
    "mem_eff": "fraction of the HBM (GPU memory) peak bandwidth a one-token matmul streams weights at",
    "skinny_eff": "the same for a matmul of 4-64 tokens (tiles sized for more rows waste bandwidth)",
    "flop_eff": "fraction of the tensor cores' peak FLOP/s a prefill of 1024 tokens reaches",
    "kernel_us": "fixed cost of one one-token matmul kernel in a CUDA graph, microseconds (launch slot, ramp, tail)",
    "skinny_us": "the same for a matmul of 4-64 tokens, microseconds (tiles, a split-K reduction)",
    "small_us": "fixed cost of any other kernel (norm, rotary, SiLU, cache write, attention), microseconds",
    "kv_repeat": "share of a K/V head's query heads whose read of its cache reaches HBM (the rest hit L2)",
    "comm_us": "extra cost per all-reduce beyond NCCL's own latency and its buffer copy, microseconds, paid by the "
               "compute stream (its launch, the dependency between the streams): no overlap hides it",
    "skew_us": "extra cost per all-reduce and per rank beyond the first, microseconds (the ranks arriving apart)",
    "interference": "how much slower compute runs while an NCCL all-reduce runs beside it",
    "shm_interference": "the same when the all-reduce goes through host memory (no NVLink peer-to-peer)",
    "shm_hop_us": "latency of one step of the ring through host memory, microseconds (no NVLink peer-to-peer)",
}
"""Each constant of :class:`Efficiency` in words (what notebook 04 and ``predict --validate`` print beside it)."""


def describe_constants(values: dict[str, float]) -> str:
    """One line per constant: its value, measured or fitted, and what it means physically."""
    source = lambda k: "from the authors' logs" if k in FROM_LOGS else "measured on an H100" if k in MEASURED \
        else "fitted to the paper"   # noqa: E731
    return "\n".join(f"  {k:18s} {v:7.3f}  {source(k):22s} {MEANING[k]}" for k, v in values.items())


WHAT_IF_FIELDS = ("mem_gbps", "tflops", "link_gbps", "gpus_per_node") + EFF_FIELDS


def load_hardware(path: str) -> Hardware:
    """A Hardware written by ``Hardware.to_json`` (e.g. by ``ladder-edu calibrate-gpu``), checked."""
    try:
        with open(path) as f:
            d = json.load(f)
        d["intra"] = Link(**d["intra"])
        d["inter"] = Link(**d["inter"]) if d.get("inter") else None
        d["eff"].pop("shm_gbps", None)             # older files fitted it; the SHM link's data sheet gives it now
        if "kernel_us" in d["eff"]:                # a file measured on single kernels: one fixed cost per matmul
            d["eff"].setdefault("skinny_us", d["eff"]["kernel_us"])
        d["eff"] = Efficiency(**d["eff"])
        return Hardware(**d)
    except (OSError, ValueError, TypeError, KeyError) as e:
        raise ValueError(f"cannot read hardware file {path!r} ({e}); write one with `ladder-edu calibrate-gpu "
                         f"--out FILE` or use a preset: {', '.join(HARDWARE)}") from None


# --- links (sources in each line) ---------------------------------------------------------------------------
NVLINK4 = Link("nvlink", 450, 0.80, nvls=450, source="H100 SXM: 18 NVLink-4 links x 25 GB/s per direction; "
               "nccl-tests ring all_reduce busbw ~360 GB/s on DGX H100 (0.8); NVSwitch NVLS")
NVLINK3 = Link("nvlink", 300, 0.78, source="A100 SXM: 12 NVLink-3 links x 25 GB/s per direction; nccl-tests "
               "busbw ~230 GB/s")
NVLINK_A800 = Link("nvlink", 200, 0.78, source="A800 SXM: NVLink capped at 400 GB/s bidirectional (200 per "
                   "direction), export variant of A100")
SHM = Link("shm", 64, 0.8, source="NCCL_P2P_DISABLE=1: NCCL's SHM transport through host memory over "
           "PCIe Gen5 x16 (64 GB/s per direction, x 0.8 as nccl-tests reach on PCIe); its step latency is fitted "
           "(Efficiency.shm_hop_us).")
PCIE4 = Link("shm", 32, 0.8, source="RTX 4090: PCIe 4.0 x16 (32 GB/s per direction), no peer-to-peer: "
             "through host memory like P2P-disabled H100s")
IB_8X400 = Link("net", 50, 0.90, source="H100 node with 8x ConnectX-7 400 Gb/s (NDR) NICs, one per GPU: 50 GB/s "
                "per GPU per direction; nccl-tests inter-node busbw ~45 GB/s per NIC")

# `ladder-edu calibrate-gpu --out h200.json` on an H200 (docs/gpu/h200/h200.json); links and communication: the H100's
H200_EFF = Efficiency(mem_eff=0.867, skinny_eff=0.860, flop_eff=0.759, kernel_us=3.851, skinny_us=3.851,
                      small_us=2.303)
_H100 = dict(mem_gbps=3350, tflops=989)      # H100 SXM5 data sheet: 3.35 TB/s HBM3, 989 TFLOP/s dense BF16/FP16
HARDWARE: dict[str, Hardware] = {
    "h100-nvlink": Hardware("h100-nvlink", **_H100, intra=NVLINK4, inter=IB_8X400,
                            note="H100 SXM, NVLink 4 / NVSwitch; nodes joined by 8x400 Gb/s InfiniBand"),
    "h100-no-p2p": Hardware("h100-no-p2p", **_H100, intra=SHM, inter=IB_8X400,
                            note="H100 SXM with NCCL_P2P_DISABLE=1 (the Ladder paper's 'no NVLink'): all-reduce "
                                 "through host memory; nodes joined by 8x400 Gb/s InfiniBand"),
    "h200-nvlink": Hardware("h200-nvlink", mem_gbps=4800, tflops=989, intra=NVLINK4, inter=IB_8X400, eff=H200_EFF,
                            note="H200 SXM (4.8 TB/s HBM3e, 141 GB; the H100's 989 TFLOP/s and NVLink 4 / NVSwitch); "
                                 "compute constants measured on an H200 (docs/gpu/h200), communication as the H100's; "
                                 "nodes joined by 8x400 Gb/s InfiniBand"),
    "a100-nvswitch": Hardware("a100-nvswitch", 1555, 312, intra=NVLINK3, inter=IB_8X400, ll_max_gbps=87.7,
                              note="A100 40GB SXM (1.555 TB/s, 312 TFLOP/s), NVLink 3 / NVSwitch; Kraken's testbed"),
    "a800-nvlink": Hardware("a800-nvlink", 2039, 312, intra=NVLINK_A800, inter=IB_8X400, ll_max_gbps=87.7,
                            note="A800 80GB SXM (2.039 TB/s, 312 TFLOP/s), NVLink 200 GB/s per direction; ISO's "
                                 "testbed"),
    "rtx4090-pcie": Hardware("rtx4090-pcie", 1008, 165, intra=PCIE4, inter=None, ll_max_gbps=87.7,
                             note="RTX 4090 (1.008 TB/s, 165 TFLOP/s dense FP16 with FP32 accumulate), PCIe 4, no "
                                  "P2P; ISO's testbed"),
}


def get_hardware(name: str) -> Hardware:
    """A preset by name, or a JSON file written by ``Hardware.to_json``."""
    if name in HARDWARE:
        return HARDWARE[name]
    if name.endswith(".json") or os.path.sep in name:
        return load_hardware(name)
    raise ValueError(f"unknown hardware {name!r}; valid choices: {', '.join(HARDWARE)} (or 'this-machine': "
                     f"calibrated now on CPU ranks; or a .json file written by `ladder-edu calibrate-gpu`)")
