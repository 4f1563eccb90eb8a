"""An analytic performance model of tensor-parallel inference, for hardware you do not have.

Per rank and per module (attention or MLP), with n = TP degree, b = batch, t = new tokens per sequence, c = context:

    compute  = max( bytes read / (mem_bw * mem_eff),  flops / (peak_flops * flop_eff) )
               bytes = the module's weight shard (+ for attention its K/V cache shard: b*c*2*(K/n)*head_dim)
               flops = 2 * shard params * b*t (+ attention scores and values: 4*b*t*c*(H/n)*head_dim)
               + a fixed cost per module (its small kernels: norm, rotary, residual add... a few us each)
    allreduce = (n-1)*hop_latency + 2(n-1)/n * (b*t*dim*bytes) / (link_bw * link_eff)   (ring; 0 if n = 1)

and each architecture's critical path over L layers (see ``schedule.py`` for the picture):

    standard:    L*(attn + mlp + 2*ar)
    parallel:    L*(attn + mlp + ar)
    ladder:      L*(attn + mlp + 2*ar) - overlap * (L*min(ar, mlp) + (L-1)*min(ar, attn))
                 (each all-reduce hides under the next module; the last one cannot)
    upper bound: L*(attn + mlp)
    kraken:      L*(attn_k + mlp_k + ar_k) - overlap * (L-1)*min(ar_k, attn_k)
                 (``config.kraken_config``: one full-width sub-layer per rank, as many parameters per layer, width
                 d/sqrt(n); its one all-reduce per layer hides under the next layer's attention; the last one,
                 the conjunction's, cannot)

plus the replicated LM head and a fixed cost per forward pass. Attention in a prefill sees on average half the
prompt (causal mask). Generation of G tokens after a P-token prompt (the
Ladder benchmark: P = 1024, G = 512) takes one prefill plus G-1 decode steps at the mean context; tokens/s =
batch * G / that time. The fitted constants are few and each has a meaning: mem_eff, flop_eff, link_eff (how
close kernels get to peak), link latency (what a small all-reduce costs), overlap (how much of an overlappable
all-reduce actually hides; 1 = perfectly), module overhead and step overhead (launch, sampling). ``calibrate.py`` fits them.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

from ..models.config import ALL_VARIANTS, ModelConfig, kraken_config


@dataclass(frozen=True)
class Hardware:
    """One device type and its interconnect. Peaks come from data sheets; *_eff, latency, overlap are fitted."""

    name: str
    mem_gbps: float                 # peak memory bandwidth per device (GB/s)
    tflops: float                   # peak dense 16-bit tensor TFLOP/s per device
    link_gbps: float                # per-device one-way bandwidth an all-reduce can use (GB/s)
    link_latency_us: float = 5.0    # all-reduce latency per peer, (n-1) hops (us) [fitted]
    mem_eff: float = 0.8            # fraction of mem_gbps decode GEMVs reach     [fitted]
    flop_eff: float = 0.6           # fraction of tflops prefill GEMMs reach      [fitted]
    link_eff: float = 0.8           # fraction of link_gbps all-reduces reach     [fitted]
    overlap: float = 0.9            # fraction of an overlappable all-reduce that hides  [fitted]
    module_overhead_us: float = 20.0  # fixed cost per attention or MLP (small kernels)  [fitted]
    step_overhead_us: float = 50.0  # fixed cost per forward pass (launch, sampling)      [fitted]
    bytes_per_param: int = 2
    note: str = ""

    def with_(self, **changes) -> "Hardware":
        return replace(self, **changes)


# Data-sheet peaks. The fitted constants of the two H100 presets come from calibrate.fit() on the Ladder paper's
# 70B table (batch 1 and 16; tests re-run the fit and compare). A100 and RTX 4090 have no published table to fit:
# they reuse the H100 kernel efficiencies and overheads, and the NVLink / no-P2P link constants respectively.
_H100 = dict(mem_eff=0.905, flop_eff=0.112, module_overhead_us=8.97, step_overhead_us=460.0)
_NVLINK = dict(link_latency_us=3.74, link_eff=0.696, overlap=0.753)
_NO_P2P = dict(link_latency_us=9.52, link_eff=0.998, overlap=0.873)
HARDWARE: dict[str, Hardware] = {
    "h100-nvlink": Hardware("h100-nvlink", 3350, 989, 450, **_H100, **_NVLINK,
                            note="H100 SXM, NVLink 4 / NVSwitch (450 GB/s each way); fitted"),
    "h100-no-p2p": Hardware("h100-no-p2p", 3350, 989, 64, **_H100, **_NO_P2P,
                            note="H100 SXM with NCCL_P2P_DISABLE=1 (all-reduce through host memory, PCIe 5); "
                                 "fitted"),
    "a100-nvswitch": Hardware("a100-nvswitch", 1555, 312, 300, **_H100, **_NVLINK,
                              note="A100 40GB SXM, NVLink 3 / NVSwitch (300 GB/s each way); Kraken's testbed; "
                                   "constants transferred from H100"),
    "a800-nvlink": Hardware("a800-nvlink", 2039, 312, 200, **_H100, **_NVLINK,
                            note="A800 80GB SXM, NVLink capped at 400 GB/s (200 each way); ISO's testbed; "
                                 "constants transferred from H100"),
    "rtx4090-pcie": Hardware("rtx4090-pcie", 1008, 165, 32, **_H100, **_NO_P2P,
                             note="RTX 4090, PCIe 4 x16, no peer-to-peer (32 GB/s each way); ISO's testbed; "
                                  "constants transferred from H100 no-P2P"),
}


def get_hardware(name: str) -> Hardware:
    if name not in HARDWARE:
        raise ValueError(f"unknown hardware {name!r}; valid choices: {', '.join(HARDWARE)} "
                         f"(or 'this-machine': ladder-edu predict --gpu this-machine calibrates it)")
    return HARDWARE[name]


@dataclass
class ModuleTimes:
    attn: float
    mlp: float
    allreduce: float
    head: float


def module_times(cfg: ModelConfig, hw: Hardware, tp: int, batch: int, new_tokens: int, context: int) -> ModuleTimes:
    """Seconds per rank for one attention, one MLP, one all-reduce and the LM head (module docstring)."""
    bpp, d, hd = hw.bytes_per_param, cfg.dim, cfg.head_dim
    mem = hw.mem_gbps * 1e9 * hw.mem_eff
    flops = hw.tflops * 1e12 * hw.flop_eff
    tokens = batch * new_tokens
    attn_params = d * hd * (2 * cfg.n_heads + 2 * cfg.n_kv_heads) / tp
    kv_bytes = batch * context * 2 * (cfg.n_kv_heads / tp) * hd * bpp
    keys = context - (new_tokens - 1) / 2                  # mean keys per query under the causal mask
    attn_flops = 2 * attn_params * tokens + 4 * tokens * keys * (cfg.n_heads / tp) * hd
    mlp_params = 3 * d * cfg.ffn_dim / tp
    head_params = cfg.vocab_size * d                       # replicated on every rank (as in the paper's code)
    fixed = hw.module_overhead_us * 1e-6
    t_attn = max((attn_params * bpp + kv_bytes) / mem, attn_flops / flops) + fixed
    t_mlp = max(mlp_params * bpp / mem, 2 * mlp_params * tokens / flops) + fixed
    t_head = max(head_params * bpp / mem, 2 * head_params * tokens / flops)
    msg = tokens * d * bpp
    link = hw.link_gbps * 1e9 * hw.link_eff
    t_ar = 0.0 if tp == 1 else (tp - 1) * hw.link_latency_us * 1e-6 + 2 * (tp - 1) / tp * msg / link
    return ModuleTimes(t_attn, t_mlp, t_ar, t_head)


def forward_time(variant: str, cfg: ModelConfig, hw: Hardware, tp: int, batch: int, new_tokens: int,
                 context: int) -> float:
    """Seconds for one forward pass (a prefill of ``new_tokens`` or one decode step) of ``variant``."""
    if variant not in ALL_VARIANTS:
        raise ValueError(f"unknown variant {variant!r}; valid choices: {', '.join(ALL_VARIANTS)}")
    if variant == "kraken":
        return _kraken_time(cfg, hw, tp, batch, new_tokens, context)
    m, L = module_times(cfg, hw, tp, batch, new_tokens, context), cfg.n_layers
    compute = L * (m.attn + m.mlp)
    if variant == "upper_bound":
        layers = compute
    elif variant == "standard":
        layers = compute + 2 * L * m.allreduce
    elif variant == "parallel":
        layers = compute + L * m.allreduce
    else:
        hidden = L * min(m.allreduce, m.mlp) + (L - 1) * min(m.allreduce, m.attn)
        layers = compute + 2 * L * m.allreduce - hw.overlap * hidden
    return layers + m.head + hw.step_overhead_us * 1e-6


def kraken_module_times(cfg: ModelConfig, hw: Hardware, tp: int, batch: int, new_tokens: int,
                        context: int) -> ModuleTimes:
    """Per rank, Kraken (``kraken_config``) compared with ``cfg``: a rank computes its whole sub-layer (tp = 1: both
    sub-layers of a degree-2 model) and all-reduces the layer output of width d/sqrt(n); the LM head is d/sqrt(n)
    wide too, part of why it is faster than the wider standard model."""
    from ..models.kraken import split_config
    kcfg = kraken_config(cfg, tp if tp > 1 else 2)
    sub = module_times(split_config(kcfg), hw, 1, batch, new_tokens, context)
    local = 1 if tp > 1 else kcfg.kraken_degree
    ar = module_times(kcfg, hw, tp, batch, new_tokens, context).allreduce
    return ModuleTimes(local * sub.attn, local * sub.mlp, ar, sub.head)


def _kraken_time(cfg: ModelConfig, hw: Hardware, tp: int, batch: int, new_tokens: int, context: int) -> float:
    m, L = kraken_module_times(cfg, hw, tp, batch, new_tokens, context), cfg.n_layers
    layers = L * (m.attn + m.mlp + m.allreduce) - hw.overlap * (L - 1) * min(m.allreduce, m.attn)
    return layers + m.head + hw.step_overhead_us * 1e-6


@dataclass
class Prediction:
    variant: str
    prefill_s: float
    decode_s: float            # per step
    tokens_per_s: float        # total over the batch, as the paper reports
    speedup_vs_standard: float | None = None


def predict(cfg: ModelConfig, hw: Hardware, tp: int, batch: int = 1, prompt: int = 1024, generate: int = 512,
            variants=ALL_VARIANTS) -> dict[str, Prediction]:
    """Prefill time, decode time per token and tokens/s of each variant (the Ladder benchmark's definitions)."""
    cfg.check_tp(tp)
    out = {}
    for v in variants:
        pre = forward_time(v, cfg, hw, tp, batch, prompt, prompt)
        dec = forward_time(v, cfg, hw, tp, batch, 1, prompt + generate // 2)
        out[v] = Prediction(v, pre, dec, batch * generate / (pre + (generate - 1) * dec))
    if "standard" in out:
        for p in out.values():
            p.speedup_vs_standard = p.tokens_per_s / out["standard"].tokens_per_s
    return out


def iso_prefill_time(cfg: ModelConfig, hw: Hardware, tp: int, batch: int, prompt: int, splits=None) -> float:
    """Seconds for ISO's chunk-interleaved prefill (``iso.py``) of the standard model.

    Per chunk [a, b): module times for b - a new tokens with context b. Two lanes as in ``schedule.py``: a module
    on chunk c waits for chunk c's previous all-reduce; all-reduces run one at a time, in order. Of the time that
    this ideal schedule saves over running everything back to back, the fraction ``hw.overlap`` is realised (the
    same fitted constant as ladder's). One chunk gives exactly the standard prefill."""
    from ..models.iso import balanced_split, chunk_bounds
    bounds = chunk_bounds(prompt, [balanced_split(cfg, prompt)] if splits is None else splits)
    per = [module_times(cfg, hw, tp, batch, b - a, b) for a, b in bounds]
    compute_free = comm_free = serial = 0.0
    ar_end: dict[tuple[int, int], float] = {}
    for i in range(2 * cfg.n_layers):                      # modules: L0.attn, L0.mlp, L1.attn, ...
        for c, m in enumerate(per):
            t = m.attn if i % 2 == 0 else m.mlp
            start = max(compute_free, ar_end.get((i - 1, c), 0.0))
            compute_free = start + t
            comm_free = max(compute_free, comm_free) + m.allreduce
            ar_end[i, c] = comm_free
            serial += t + m.allreduce
    ideal = max(compute_free, comm_free)
    head = module_times(cfg, hw, tp, batch, prompt, prompt).head
    return serial - hw.overlap * (serial - ideal) + head + hw.step_overhead_us * 1e-6
