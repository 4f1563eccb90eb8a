"""What a recovery fine-tune does, as one validated object, and its learning-rate schedule.

Learning rate at step s (0-based) of S, warm-up W:

    lr(s) = lr * (s + 1) / W                                                   for s < W
    lr(s) = min_lr + (lr - min_lr) * (1 + cos(pi * (s - W) / (S - W))) / 2     after
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from .distill import DIVERGENCES

METHODS = ("plain", "distill", "onpolicy", "match")
TEACHER_METHODS = ("distill", "onpolicy")   # the methods a teacher teaches by (the recipe's run may use either)
SELECT = ("last", "gen_kl")
PROMPTS = ("templates", "self")


@dataclass
class FinetuneConfig:
    """One fine-tune. Its defaults are the recovery recipe's (``RECIPE``: distillation from the original, on
    replies it wrote to prompts it wrote itself, at lr 2e-4 with 3/4 of each batch from those chats): what every
    recovery command runs unless an option says otherwise (docs/recovery.md has how each was chosen)."""
    steps: int = 100
    batch: int = 4
    lr: float = 2e-4
    min_lr: float = 1e-5
    warmup: int = 10
    weight_decay: float = 0.0
    clip: float = 1.0                 # max gradient norm
    method: str = "distill"           # plain | distill | onpolicy | match
    alpha: float = 1.0                # distill: weight of the KL term (1 - alpha: cross-entropy)
    divergence: str = "forward"       # distill, onpolicy: KL(teacher||student) or "reverse" KL(student||teacher)
    temperature: float = 1.0          # distill: softmax temperature
    hidden_weight: float = 0.0        # distill: weight of the module-output matching term (distill.hidden_loss)
    chat_fraction: float = 0.75       # distill: share of each batch drawn from teacher-written chat blocks
    prompts: str = "self"             # chat prompts from templates | self (the teacher wrote them); recorded, so a
                                      # resume with other prompts is refused
    reply_tokens: int = 48            # onpolicy: tokens the student samples per reply
    reply_only: bool = False          # distill: KL on the chat blocks' reply tokens only (needs Data.chat_mask)
    select: str = "last"              # last | gen_kl: end with the weights of the best generation score
    lora_rank: int = 0                # > 0: train rank-r adapters on the unfrozen layers instead of their weights
    eval_every: int = 25              # held-out loss every N steps (and at the end)
    checkpoint_every: int = 20       # (a checkpoint of SmolLM2-135M is 1.3 GB and takes about 3 s to write)
    freeze_embeddings: bool = True    # a conversion changes the dataflow, not the vocabulary
    freeze_below: int = 0             # keep layers 0 .. k-1 frozen (a hybrid conversion leaves them unchanged)
    train_layers: list | None = None  # train only these layers (the converted ones of a chosen set); None: all
    amp: bool = True                  # bf16 autocast (weights and AdamW stay float32)
    max_loss: float = 20.0            # divergence guard
    seed: int = 0

    def __post_init__(self):
        if self.method not in METHODS:
            raise ValueError(f"unknown fine-tune method {self.method!r}; valid choices: {', '.join(METHODS)}")
        if self.prompts not in PROMPTS:
            raise ValueError(f"unknown prompt source {self.prompts!r}; valid choices: {', '.join(PROMPTS)}")
        if self.select not in SELECT:
            raise ValueError(f"unknown checkpoint selection {self.select!r}; valid choices: {', '.join(SELECT)}")
        if self.divergence not in DIVERGENCES:
            raise ValueError(f"unknown divergence {self.divergence!r}; valid choices: {', '.join(DIVERGENCES)}")
        if self.lora_rank < 0 or self.reply_tokens < 1:
            raise ValueError("lora_rank must be >= 0 and reply_tokens >= 1")
        if self.steps < 1 or self.batch < 1 or self.warmup < 0 or self.lr <= 0:
            raise ValueError("steps and batch must be >= 1, warmup >= 0 and lr > 0")
        if self.train_layers is not None:
            self.train_layers = sorted(int(i) for i in self.train_layers)
            if self.freeze_below or self.lora_rank:
                raise ValueError("train_layers cannot be combined with freeze_below or lora_rank: give one of them")


RECIPE = {name: getattr(FinetuneConfig, name) for name in ("method", "prompts", "lr", "chat_fraction")}
"""The recipe's choices, as the recovery commands name them (``FinetuneConfig``'s defaults)."""


def warmup_steps(steps: int) -> int:
    """The recovery fine-tunes' warm-up: a tenth of the steps, at least 1 and at most 10."""
    return min(10, max(1, steps // 10))


def lr_at(step: int, ft: FinetuneConfig) -> float:
    if step < ft.warmup:
        return ft.lr * (step + 1) / ft.warmup
    p = (step - ft.warmup) / max(1, ft.steps - ft.warmup)
    return ft.min_lr + (ft.lr - ft.min_lr) * (1 + math.cos(math.pi * min(p, 1.0))) / 2
