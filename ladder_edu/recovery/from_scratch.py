"""The Ladder paper's Table 3 in miniature: small models trained from scratch, identical data, budget and seeds.

Data: the bytes of ``pydoc_data.topics`` (vocabulary 256: no tokenizer needed), split as in ``evaluate.py``
(every 5th topic held out). Each architecture is trained with the same recipe (``finetune.finetune`` with
embeddings trainable, AdamW, warm-up + cosine) for every seed; the seed fixes the initial weights' generator and
the batch order, identically across architectures. Kraken uses ``config.kraken_config`` (degree 2, the same
parameters per layer). Reported: validation perplexity per byte, per seed, and the mean and spread.
"""
from __future__ import annotations

import math
import os
import statistics

import torch

from ..models.config import ModelConfig, kraken_config
from .evaluate import corpus_split, mean_loss
from ..util.atomic import write_json
from .finetune import FinetuneConfig, finetune
from ..models.build import build_model, init_weights
from ..models.registry import VARIANTS

ARCHS_COMPARED = tuple(n for n, v in VARIANTS.items() if v.same_model_as == n)
"""Every variant that is a model of its own (models.registry): standard, parallel, ladder, Kraken."""
STEPS, SEEDS, OUT = 300, (0, 1), "runs/from_scratch"      # ladder-edu from-scratch's defaults
BASE = ModelConfig(name="scratch", dim=128, n_layers=4, n_heads=4, n_kv_heads=4, ffn_dim=352, vocab_size=256,
                   max_seq_len=256)


def byte_blocks(text: str, block: int) -> torch.Tensor:
    data = torch.tensor(list(text.encode("utf-8")), dtype=torch.long)
    n = len(data) // block
    return data[: n * block].reshape(n, block)


def arch_config(arch: str, base: ModelConfig = BASE) -> ModelConfig:
    if arch == "kraken":
        return kraken_config(base, 2)
    return base.replace(arch=arch)


def train_one(arch: str, seed: int, steps: int, out_dir: str, block: int = 128, batch: int = 16, lr: float = 2e-3,
              eval_rows: int = 64, base: ModelConfig = BASE, progress: bool = False) -> dict:
    cfg = arch_config(arch, base).replace(init_std=0.02)
    train_text, held_text = corpus_split()
    train, held = byte_blocks(train_text, block + 1), byte_blocks(held_text, block + 1)[:eval_rows]
    model = build_model(cfg, init_weights(cfg, seed))
    ft = FinetuneConfig(steps=steps, batch=batch, method="plain", lr=lr, min_lr=lr / 10, warmup=max(1, steps // 10), seed=seed,
                        eval_every=max(1, steps // 4), checkpoint_every=max(1, steps // 4), freeze_embeddings=False,
                        amp=False)
    hist = finetune(model, train, ft, os.path.join(out_dir, f"{arch}_seed{seed}"), held, progress=progress,
                    desc=f"{arch} seed {seed}")
    params = sum(p.numel() for p in model.parameters())
    return {"loss": mean_loss(model, held), "params": params, "history": hist["eval"]}


def compare(out_dir: str = OUT, steps: int = STEPS, seeds=SEEDS, archs=ARCHS_COMPARED, progress: bool = True,
            **kw) -> dict:
    """Train every architecture for every seed; returns and writes ``out_dir/from_scratch.json``."""
    result = {"steps": steps, "seeds": list(seeds), "archs": {}}
    for arch in archs:
        runs = [train_one(arch, s, steps, out_dir, progress=progress, **kw) for s in seeds]
        ppl = [math.exp(r["loss"]) for r in runs]
        result["archs"][arch] = {"ppl": ppl, "mean_ppl": statistics.mean(ppl),
                                 "spread": max(ppl) - min(ppl), "params": runs[0]["params"]}
    write_json(os.path.join(out_dir, "from_scratch.json"), result)
    return result


def table(result: dict) -> str:
    lines = [f"{'arch':<10} {'params':>8} {'val ppl/byte (mean)':>20} {'per seed':>22}"]
    for arch, r in result["archs"].items():
        seeds = ", ".join(f"{p:.3f}" for p in r["ppl"])
        lines.append(f"{arch:<10} {r['params']:8d} {r['mean_ppl']:20.3f} {seeds:>22}")
    return "\n".join(lines)
