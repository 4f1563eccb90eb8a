"""What one run is, in one frozen object: the model, the TP degree, the variants, and how it is stepped.

Benchmarks (``perf.measure.bench``), profiles (``profiling.trace``) and the TP == one-device check
(``models.check``) each send one :class:`RunSpec` to every rank (``tp.launch.run(worker, spec.tp, spec)``), so a
worker's inputs are named, validated once here, and never depend on the order of a parameter list. How the ranks
are started (backend, timeouts, threads, port) is ``tp.launch.LaunchOptions``, kept apart.
"""
from __future__ import annotations

import dataclasses

from .config import ModelConfig, variant_config
from .registry import PHASES, get_variant
from .model import DTYPES

"""prefill: the whole prompt in one forward pass (compute-bound); decode: one new token per step, reading the KV
cache (memory-bound)."""


@dataclasses.dataclass(frozen=True)
class RunSpec:
    """One run. ``variants`` empty: ``cfg`` itself (the check); else benchmark variants built from ``cfg``
    (``config.variant_config``). ``context``: decode, the tokens already in the KV cache; prefill, the prompt length.
    ``steps`` timed or profiled steps per round, ``rounds`` interleaved rounds after ``warmup`` untimed ones.
    ``compile_mode``: None (eager), "auto" (CUDA graphs on a GPU) or a ``torch.compile`` mode; decode only."""
    cfg: ModelConfig
    tp: int = 1
    variants: tuple = ()
    phase: str = "decode"
    batch: int = 1
    context: int = 64
    steps: int = 16
    rounds: int = 6
    warmup: int = 1
    seed: int = 0
    dtype: str = "float32"
    compile_mode: str | None = None

    def __post_init__(self):
        if not isinstance(self.cfg, ModelConfig):
            raise TypeError(f"cfg must be a ModelConfig, got {type(self.cfg).__name__}")
        variants = (self.variants,) if isinstance(self.variants, str) else tuple(self.variants)
        object.__setattr__(self, "variants", variants)
        for name, lo in (("tp", 1), ("batch", 1), ("context", 1), ("steps", 1), ("rounds", 1), ("warmup", 0),
                         ("seed", 0)):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < lo:
                raise ValueError(f"{name} must be an integer >= {lo}, got {value!r}")
        if self.phase not in PHASES:
            raise ValueError(f"unknown phase {self.phase!r}; valid choices: {', '.join(PHASES)}")
        if self.dtype not in DTYPES:
            raise ValueError(f"unknown dtype {self.dtype!r}; valid choices: {', '.join(DTYPES)}")
        if self.compile_mode is not None:
            from .compiled import MODES
            if self.compile_mode not in ("auto",) + MODES:
                raise ValueError(f"unknown compile mode {self.compile_mode!r}; valid choices: auto, "
                                 f"{', '.join(MODES)}")
            if self.phase != "decode":
                raise ValueError("compile applies to decode steps (the Ladder paper compiled decode with CUDA "
                                 "graphs); use phase='decode' or drop compile")
        for v in self.variants:
            variant_config(self.cfg, v, self.tp)                 # validates the names (and Kraken's degree)
        for v in self.variants:
            if self.phase not in get_variant(v).phases:
                raise ValueError(f"the {v!r} variant runs in {' and '.join(get_variant(v).phases)} only: use it "
                                 f"with phase='prefill'")
        self.cfg.check_tp(self.tp)

    def check_fits(self, positions: int, what: str) -> None:
        """Raise unless ``positions`` token positions (``what`` says which) fit in the model's context."""
        if positions > self.cfg.max_seq_len:
            raise ValueError(f"{what} = {positions} positions exceeds max_seq_len={self.cfg.max_seq_len}; "
                             f"use a shorter context or fewer steps")

    def replace(self, **changes) -> "RunSpec":
        return dataclasses.replace(self, **changes)
