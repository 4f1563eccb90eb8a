"""An analytic performance model of tensor-parallel inference, built from the kernels a forward pass launches.

Per rank, with n = TP degree, b = batch, T = new tokens per sequence (1 in decode, the prompt in prefill), S = the
keys each query reads (gpt-fast attends over its whole static KV cache: S = prompt + generated, rounded up to 8),
bytes per value 2 (fp16), each module is a list of kernels (``kernels.kernel_counts``: counted from this package's
model code, fused as inductor and gpt-fast launch them). Every kernel costs

    fixed  +  max( bytes / (HBM peak * mem_eff),  flops / (tensor peak * flop_eff) )   (fixed part + roofline)

(fixed = ``kernel_us`` for a GEMV, ``skinny_us`` for a GEMM of more tokens, ``small_us`` for any other kernel;
calibrated on the authors' logs of gpt-fast's step without communication, ``stepfit.py``)

(``mem_eff`` becomes ``skinny_eff`` for a weight-streaming GEMM of more than one token)
* projections (GEMV in decode, GEMM in prefill): bytes = the weight shard (+ activations), flops = 2 * shard * bT;
* attention: each K/V head's cache is read once, and again for a share ``kv_repeat`` of its other g - 1 query
  heads (gpt-fast repeats K/V per query head; the rest of the repeats hit L2), with r = 1 + kv_repeat (g - 1):
  bytes = 2 * b * (H_kv/n) * r * S * head_dim * 2 (+ the scores, written and read back: 4 * b * (H/n) * T * S * 2),
  flops = 4 * b * (H/n) * T * S * head_dim;
* KV-cache writes, fused pointwise kernels (residual add + norm: 3 b T d values; rotary on q and k; SiLU(g) * u:
  3 b T ffn/n; the all-reduce's input copy: 2 b T d): the activations they read and write;
* the LM head, replicated on every rank (as in the paper's code): V * d weights; gpt-fast computes the logits of
  every prompt position in prefill; then sampling and buffer updates (``kernels.STEP_KERNELS``, ``OUTSIDE_GRAPH``).

A communicating module adds a copy kernel (a functional all-reduce copies its input into the collective's buffer)
and an all-reduce of b*T*d values, timed by the deployment's implementation (``Deployment.allreduce``; by default
``nccl.allreduce_time``: NCCL's own algorithm choice, latency and bandwidth, plus the call's cost). A call on GPUs
costs the compute stream ``comm_us`` (``allreduce_lanes``; NCCL's or any other kernel's); the rest runs beside the
compute. Every function takes the question as
one ``Deployment`` (model, hardware, TP, batch, nodes, ladder layers, all-reduce implementation). The architectures differ only in which all-reduces a module waits for
(``critical_path``: lag 0 or 1, and the compute slow-down while an all-reduce overlaps it). Generation of G tokens
after a P-token prompt (the Ladder benchmark: P = 1024, G = 512) takes one prefill and G - 1 decode steps; tokens/s
= b * G / that time.
"""
from __future__ import annotations

from itertools import groupby

from dataclasses import dataclass

from ...models.config import ModelConfig, kraken_config
from ...models.registry import ALL_VARIANTS, BASELINE, get_variant
from . import critical_path as cp
from .deployment import Deployment
from .hardware import HARDWARE, Hardware, get_hardware  # noqa: F401  (re-exported: the presets live there)
from .kernels import OUTSIDE_GRAPH, STEP_KERNELS, kernel_counts
from .nccl import launched_on_gpu

PARTS = ("weights", "attention", "small kernels", "all-reduce calls", "LM head + sampling")
LAYER_PARTS = PARTS[:4]
"""A step's compute by kind (``Pass.parts``); the first four are each layer's (``ModuleCost.parts``): "all-reduce
calls" is what a module's all-reduce costs the compute stream, its input copy and the call (``comm_us``)."""


@dataclass
class ModuleCost:
    """One module's compute, split by what it spends it on, and its all-reduce."""
    parts: dict[str, float]
    comm: float = 0.0
    algo: str = ""

    @property
    def compute(self) -> float:
        return sum(self.parts.values())


def _kernels(hw: Hardware, k: int, nbytes: float, flops: float, tokens: int = 1,
             matmul: bool = False) -> tuple[float, float]:
    """(fixed part, roofline part) of k kernels moving ``nbytes`` and doing ``flops`` together; ``tokens`` > 1
    makes a weight-streaming kernel a skinny GEMM (``skinny_eff``, fixed part ``skinny_us``) rather than a GEMV
    (``mem_eff``, ``kernel_us``); any other kernel's fixed part is ``small_us``."""
    e = hw.eff
    mem = e.mem_eff if tokens == 1 else e.skinny_eff
    roof = max(nbytes / (hw.mem_gbps * 1e9 * mem), flops / (hw.tflops * 1e12 * e.flop_eff))
    fixed = (e.kernel_us if tokens == 1 else e.skinny_us) if matmul else e.small_us
    return k * fixed * 1e-6, roof


def module_cost(kind: str, dep: Deployment, new_tokens: int, keys: int, comm: bool = True) -> ModuleCost:
    """Cost per rank of one "attn", "mlp" or "attn+mlp" (parallel block) module of ``dep``'s model; ``keys``: the
    keys each query reads; ``comm``: whether it all-reduces its output."""
    cfg, hw, tp, batch = dep.cfg, dep.hw, dep.tp, dep.batch
    arch = "parallel" if kind == "attn+mlp" else "standard"
    counts = kernel_counts(arch)[kind]
    if kind == "attn+mlp" and dep.parallel_block == "authors":     # one norm, one q/k/v/gate/up matmul
        counts = counts.copy()
        counts["matmul"] -= 1
        counts["pointwise"] -= 1
    bpp, d, hd, bt = hw.bytes_per_param, cfg.dim, cfg.head_dim, batch * new_tokens
    params, act = 0.0, 0.0                        # act: values the fused pointwise kernels read and write
    parts = dict.fromkeys(LAYER_PARTS, 0.0)
    if "attn" in kind:
        params += d * hd * (2 * cfg.n_heads + 2 * cfg.n_kv_heads) / tp
        act += 3 * bt * d + 2 * bt * (cfg.n_heads + cfg.n_kv_heads) / tp * hd      # add + norm; rotary on q, k
        heads, group = cfg.n_heads / tp, cfg.n_heads // cfg.n_kv_heads
        reads = heads / group * (1 + hw.eff.kv_repeat * (group - 1))     # K/V head reads: once to once per q head
        kv = 2 * batch * reads * keys * hd * bpp + 4 * batch * heads * new_tokens * keys * bpp
        fixed, roof = _kernels(hw, counts["attention"], kv, 4 * batch * heads * new_tokens * keys * hd)
        parts["attention"] += roof
        parts["small kernels"] += fixed
    if "mlp" in kind:
        params += 3 * d * cfg.ffn_dim / tp
        act += 3 * bt * d + 3 * bt * cfg.ffn_dim / tp                              # add + norm; SiLU(g) * u
    fixed, roof = _kernels(hw, counts["matmul"], params * bpp + 2 * bt * d * bpp, 2 * params * bt, bt, True)
    parts["weights"] += roof
    parts["small kernels"] += fixed
    fixed, roof = _kernels(hw, counts["pointwise"] + counts.get("scatter", 0), act * bpp, 0.0)
    parts["small kernels"] += fixed + roof
    if not comm or tp == 1:
        return ModuleCost(parts)
    on_compute, t, algo = allreduce_lanes(dep, bt * d * bpp)
    parts["all-reduce calls"] += allreduce_copy_s(hw, bt * d * bpp) + on_compute
    return ModuleCost(parts, t, algo)


def allreduce_copy_s(hw: Hardware, nbytes: float) -> float:
    """Seconds of the kernel that copies an all-reduce's ``nbytes`` input into the collective's buffer (a functional
    all-reduce copies first): one small kernel reading and writing them."""
    fixed, roof = _kernels(hw, 1, 2 * nbytes, 0.0)
    return fixed + roof


def allreduce_lanes(dep: Deployment, nbytes: float) -> tuple[float, float, str]:
    """(seconds on the compute stream, seconds on the communication lane, algorithm) of one all-reduce. A call on
    GPUs costs its caller ``comm_us`` on the compute stream, which no overlap hides (its launch and the dependency
    edges between the streams in the graph: the authors' logs leave 4-6 us per all-reduce unhidden by ladder at
    every TP, ``logs.unhidden_per_allreduce``); the rest of its time, the collective itself and the wait for the
    last rank, runs beside the compute. Whatever the implementation (NCCL's, a one-shot kernel, a fixed latency)
    the call's part is the same; an all-reduce shorter than it runs whole on the compute stream."""
    t, algo = dep.allreduce_time(nbytes)
    launch = min(t, 1e-6 * dep.hw.eff.comm_us) if launched_on_gpu(dep.hw) else 0.0
    return launch, t - launch, algo


def head_cost(dep: Deployment, new_tokens: int) -> float:
    """The replicated LM head (its norm and matmul; logits of every new position), sampling, buffer updates."""
    cfg, hw, batch = dep.cfg, dep.hw, dep.batch
    bpp, v, d = hw.bytes_per_param, cfg.vocab_size, cfg.dim
    logits = batch * new_tokens * v
    fixed, roof = _kernels(hw, 1, v * d * bpp + logits * bpp, 2 * logits * d, batch * new_tokens, True)
    fixed += _kernels(hw, 1, 0.0, 0.0)[0]                                  # the final norm
    fixed2, roof2 = _kernels(hw, STEP_KERNELS + OUTSIDE_GRAPH, 5 * batch * v * 4, 0.0)
    return fixed + roof + fixed2 + roof2


def layer_modules(variant: str, dep: Deployment, new_tokens: int, keys: int) -> list[tuple[str, ModuleCost]]:
    """One layer's modules for a variant (Kraken: per rank, its own sub-layer; see ``kraken_modules``)."""
    v = get_variant(variant)
    kinds = ("attn+mlp",) if v.layout == "fused" else ("attn", "mlp")
    return [(k, module_cost(k, dep, new_tokens, keys, v.all_reduces)) for k in kinds]


def kraken_modules(dep: Deployment, new_tokens: int, keys: int) -> list[tuple[str, ModuleCost]]:
    """Kraken (``config.kraken_config``, degree = TP): each rank computes one full-width sub-layer of width
    d/sqrt(n) on its own (tp = 1 shapes), then one all-reduce per layer of the layer output, which only the next
    layer's MLP needs. With tp = 1 the rank computes both sub-layers of a degree-2 model."""
    from ...models.kraken import split_config
    tp = dep.tp
    kcfg = kraken_config(dep.cfg, tp if tp > 1 else 2)
    sub, local = dep.with_(cfg=split_config(kcfg), tp=1, nodes=1), (1 if tp > 1 else 2)
    attn = module_cost("attn", sub, new_tokens, keys, comm=False)
    mlp = module_cost("mlp", sub, new_tokens, keys, comm=False)
    if local > 1:
        attn.parts = {k: local * v for k, v in attn.parts.items()}
        mlp.parts = {k: local * v for k, v in mlp.parts.items()}
    if tp > 1:
        launch, mlp.comm, mlp.algo = allreduce_lanes(dep, dep.batch * new_tokens * kcfg.dim * dep.hw.bytes_per_param)
        mlp.parts["all-reduce calls"] += launch
    return [("attn", attn), ("mlp", mlp)]


@dataclass
class Pass:
    """One forward pass of a variant: its time and where the time went."""
    seconds: float
    parts: dict[str, float]          # compute by kind, overlap slow-down, exposed and hidden communication
    algo: str


def ladder_positions(cfg: ModelConfig, ladder_layers=None) -> frozenset[int]:
    """The ladder layers of a hybrid: None -> all, k -> the top k, a set -> itself (ValueError if out of range)."""
    L = cfg.n_layers
    if ladder_layers is None:
        return frozenset(range(L))
    try:
        return cfg.replace(arch="standard", ladder_layers=ladder_layers).ladder_set
    except ValueError as e:
        raise ValueError(f"ladder_layers for {cfg.name}: {e}") from None


def forward(variant: str, dep: Deployment, new_tokens: int, keys: int) -> Pass:
    """A forward pass (a prefill of ``new_tokens`` or one decode step, each query reading ``keys`` keys) of
    ``variant`` on the critical path. ``dep.ladder_layers``: for "ladder", which layers are ladder (None: all; k:
    the top k; a set of indices: those layers, each at its position: a ladder layer hides the all-reduce before it
    and its attention's, and its MLP's only if the next layer is ladder too)."""
    v = get_variant(variant)
    if variant not in ALL_VARIANTS:
        raise ValueError(f"{variant!r} has no decode step of its own (prefill only: iso_prefill_time); valid "
                         f"choices: {', '.join(ALL_VARIANTS)}")
    cfg, hw, batch = dep.cfg, dep.hw, dep.batch
    L = cfg.n_layers
    if v.layout == "subsets":
        mods = kraken_modules(dep, new_tokens, keys)
        runs = [([cp.Module(mods[0][1].compute, 0.0, 1), cp.Module(mods[1][1].compute, mods[1][1].comm, 0)], L)]
    else:
        mods = layer_modules(variant, dep, new_tokens, keys)
        lagged = ladder_positions(cfg, dep.ladder_layers) if v.lag else frozenset()
        kinds = {lag: [cp.Module(m.compute, m.comm, lag) for _, m in mods] for lag in {0, v.lag}}
        runs = [(kinds[lag], len(list(g)))              # runs of consecutive layers of one kind, in order
                for lag, g in groupby(v.lag if i in lagged else 0 for i in range(L))]
    msg_dim = kraken_config(cfg, max(dep.tp, 2)).dim if v.layout == "subsets" else cfg.dim
    lanes = cp.Lanes()
    for layer, count in runs:
        if count:
            cp.run(lanes, layer, count, interference(hw, batch * new_tokens * msg_dim * hw.bytes_per_param))
    layers_end = cp.finish(lanes)
    head = head_cost(dep, new_tokens)
    per_layer = {p: sum(m.parts[p] for _, m in mods) for p in LAYER_PARTS}
    parts = {p: L * per_layer[p] for p in LAYER_PARTS}
    parts["LM head + sampling"] = head
    exposed = layers_end - lanes.compute_work - lanes.stretch
    parts.update({"overlap slow-down": lanes.stretch, "exposed communication": exposed,
                  "hidden communication": lanes.comm_work - exposed})
    parts = {k: (0.0 if abs(v) < 1e-12 else v) for k, v in parts.items()}
    return Pass(layers_end + head, parts, next((m.algo for _, m in mods if m.algo), "none"))


def forward_time(variant: str, dep: Deployment, new_tokens: int, keys: int) -> float:
    """Seconds of one forward pass (``forward``); ``keys`` = keys each query reads."""
    return forward(variant, dep, new_tokens, keys).seconds


def interference(hw: Hardware, nbytes: float) -> float:
    """Compute slow-down while an all-reduce of ``nbytes`` overlaps it. NCCL runs a collective on as many
    channels (one SM each) as its size needs, up to all of them from about 1 MiB on (its channel heuristic in
    ``enqueue.cc``), so the slow-down grows with the message up to ``interference`` (``shm_interference`` through
    host memory). On a CPU (a ``measured`` link) gloo's threads take cores whatever the size: the measured value.
    """
    if hw.intra.kind == "measured":          # a CPU: gloo's threads take cores whatever the message size
        return hw.eff.interference
    top = hw.eff.shm_interference if hw.intra.kind == "shm" else hw.eff.interference
    return top * min(1.0, nbytes / 2 ** 20)


def static_cache(prompt: int, generate: int) -> int:
    """gpt-fast's KV cache length: prompt + generated tokens, rounded up to a multiple of 8."""
    return -(-(prompt + generate) // 8) * 8


@dataclass
class Prediction:
    variant: str
    prefill_s: float
    decode_s: float            # per step
    tokens_per_s: float        # total over the batch, as the paper reports
    speedup_vs_standard: float | None = None


def predict(cfg: ModelConfig, hw: Hardware, tp: int, batch: int = 1, prompt: int = 1024, generate: int = 512,
            variants=ALL_VARIANTS, nodes: int = 1, ladder_layers: int | None = None,
            allreduce="nccl", parallel_block: str = "package") -> dict[str, Prediction]:
    """Prefill time, decode time per token and tokens/s of each variant (the Ladder benchmark's definitions) for
    the ``Deployment`` of these arguments (``allreduce``: a name in ``deployment.ALLREDUCE`` or a function)."""
    dep = Deployment(cfg, hw, tp, batch, nodes, ladder_layers, allreduce, parallel_block)
    keys, out = static_cache(prompt, generate), {}
    for v in variants:
        pre = forward_time(v, dep, prompt, keys)
        dec = forward_time(v, dep, 1, keys)
        out[v] = Prediction(v, pre, dec, batch * generate / (pre + (generate - 1) * dec))
    if BASELINE in out:
        for p in out.values():
            p.speedup_vs_standard = p.tokens_per_s / out[BASELINE].tokens_per_s
    return out


def iso_prefill_time(dep: Deployment, prompt: int, splits=None) -> float:
    """ISO (``models/iso.py``): the standard model's prefill in chunks, interleaved. On the critical path the
    sequence is chunk 0's attention, chunk 1's attention, chunk 0's MLP, ...; each chunk's module needs only its
    own chunk's previous all-reduce (lag = chunks - 1 in the interleaved order). A chunk [a, b) reads b keys."""
    from ...models.iso import balanced_split, chunk_bounds
    cfg, hw, batch = dep.cfg, dep.hw, dep.batch
    bounds = chunk_bounds(prompt, [balanced_split(cfg, prompt)] if splits is None else splits)
    chunks = [layer_modules(BASELINE, dep, b - a, b) for a, b in bounds]
    if len(chunks) > cp.MAX_LAG:
        raise ValueError(f"ISO with {len(chunks)} chunks: at most {cp.MAX_LAG} are modeled")
    layer = [cp.Module(c[i][1].compute, c[i][1].comm, len(chunks) - 1) for i in range(2) for c in chunks]
    lanes = cp.Lanes()
    cp.run(lanes, layer, cfg.n_layers, interference(hw, batch * prompt / 2 * cfg.dim * hw.bytes_per_param))
    return cp.finish(lanes) + head_cost(dep, prompt)
