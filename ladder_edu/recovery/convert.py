"""Choose the layers, convert, distill (the recipe), and the closed-form repair beside it: ``ladder-edu convert``.

1. **original**: the pretrained model, measured (pydoc held-out perplexity, out-of-domain perplexity, probe, and
   the *generation score*: KL(original || model) on held-out replies the original wrote itself).
2. **teacher text**: the original writes questions about everyday subjects and answers them (``experiment``'s
   recipe text; nothing shares a word with the probe). Its first ``score_blocks`` blocks score, the rest calibrate
   the repair and train.
3. **choice** (``choose.py``): every layer's cost alone, and the greedy choice of ``k`` layers (the order of
   addition is kept, so its prefixes are the choices for smaller k).
4. **converted**: the top k and the chosen k, no training.
5. **repaired** (``repair.py``): the chosen k with every converted module's output projection refit by ridge
   regression (``repair_ridge``) on the calibration text (``repair_text``: the original's chats, or those and as
   many blocks of the pydoc training split, spread over it); no training.
6. **distilled**: from the unrepaired chosen model (the recipe, ``RECIPE_STAGES``) and, at the same budget, from the
   repaired one: distillation from the original (``experiment.RECIPE``), training only the converted layers; the
   fine-tune's evaluations are its loss on the held-out teacher replies (a generation score, in its history), not
   perplexity. What each stage recovers on SmolLM2 is measured in docs/recovery.md.
7. **the other recoveries**, each from the chosen model at the same number of steps: teacher-forced per-module
   matching (``match.py``) alone and followed by distillation; progressive conversion (the chosen layers added in
   their order of choice, a third at a time, a third of the steps after each); distillation with the KL on the chat
   replies only and the checkpoint chosen by the generation score (``finetune``'s ``reply_only``, ``select``).

Each stage is written to ``out_dir/results.json`` as it finishes and every model to its own directory (``ladder-edu
evaluate --model DIR``); a rerun skips finished stages and resumes a fine-tune from its checkpoint.
"""
from __future__ import annotations

import json
import math
import os

import torch

from .choose import choose_layers, divergence, teacher_log_probs
from .evaluate import blocks, corpus_split, mean_loss, out_of_domain_text, run_probe
from .experiment import RECIPE, build, load, recipe_prompts, teacher_chat_blocks
from .distill import reply_mask
from .finetune import FinetuneConfig, finetune
from .ftconfig import warmup_steps
from .repair import repair
from .safe_io import is_model_dir, load_model_dir, save_model_dir
from ..util.atomic import write_json
from .options import (CALIB_BLOCKS, CHOSEN_KS, CHOSEN_RECOVER_KS, EVAL_BLOCKS, LADDER_LAYERS,  # noqa: F401
                      RECIPE_STAGES, REPAIR_TEXTS, RESCORE_EVERY, STAGES, STEPS, TRAINED, ConvertOptions)

PROGRESSIVE_GROUPS = 3


class Texts:
    """Everything a model is measured on, tokenized once."""

    def __init__(self, tok, chat: torch.Tensor, eval_blocks: int, score_blocks: int):
        train_text, held_text = corpus_split()
        self.train = blocks(tok, train_text)
        self.held = blocks(tok, held_text, limit=eval_blocks)
        self.ood_name, ood = out_of_domain_text()
        self.ood = blocks(tok, ood, limit=eval_blocks)
        if len(chat) < 2:
            raise ValueError(f"the original's text fills {len(chat)} block(s) of 256 tokens; at least 2 are needed "
                             f"(one to score, one to calibrate): allow more prompts (max_prompts)")
        score_blocks = min(score_blocks, len(chat) // 2)
        self.score, self.calib = chat[:score_blocks], chat[score_blocks:]


def repair_tokens(texts: Texts, calib_blocks: int, repair_text: str = "chats") -> torch.Tensor:
    """The repair's calibration blocks: the original's chats ("chats"), or those and as many blocks of the pydoc
    training split taken at an even stride over it ("mixed": documentation prose and code next to chat)."""
    chats = texts.calib[:calib_blocks]
    if repair_text == "chats":
        return chats
    stride = max(1, len(texts.train) // calib_blocks)
    return torch.cat([chats, texts.train[::stride][:calib_blocks]])


def measure_all(model, tok, texts: Texts, teacher_logp, probe_limit=None) -> dict:
    """Perplexity on the pydoc held-out split and on the out-of-domain text, the generation score, the probe."""
    held, ood = mean_loss(model, texts.held), mean_loss(model, texts.ood)
    probe = run_probe(model, tok, limit=probe_limit)
    return {"ppl": math.exp(held), "loss": held, "ood_ppl": math.exp(ood), "ood_loss": ood,
            "gen_kl": divergence(model, teacher_logp, texts.score), "probe": probe["score"],
            "probe_correct": probe["correct"], "probe_total": probe["total"], "replies": probe["replies"][:8]}


def convert(opts: ConvertOptions, progress: bool = True) -> dict:
    """``ladder-edu convert`` and ``ladder-edu finetune``'s recipe: one run of ``opts`` (``ConvertOptions``)."""
    opts.check()
    if opts.choice_from:
        reuse_choice(opts.choice_from, opts.out, opts.choose)
    return run_conversion(opts.out, opts.choose, opts.steps, eval_blocks=opts.eval_blocks, every=opts.every,
                          calib_blocks=opts.calib_blocks, probe_limit=opts.probe_limit, max_prompts=opts.max_prompts,
                          stages=opts.stages, repair_ridge=opts.repair_ridge, repair_text=opts.repair_text,
                          progress=progress)


def run_conversion(out_dir: str, k: int = LADDER_LAYERS, steps: int = STEPS, source: str = "smollm2",
                   eval_blocks: int = EVAL_BLOCKS, score_blocks: int = 8, calib_blocks: int = CALIB_BLOCKS,
                   every: int = RESCORE_EVERY, choose_k: int | None = None,
                   probe_limit: int | None = None, max_prompts: int | None = None, chat_tokens: int = 48,
                   stages=STAGES, candidates=None, prompt_source: str = "self", seed: int = 0, progress: bool = True,
                   loaded=None, repair_ridge: float = 1e-3, repair_text: str = "chats") -> dict:
    """The stages of the module docstring that are in ``stages``, resumably; returns the results dict.
    ``choose_k`` (default k) layers are chosen greedily from ``candidates`` (default: all); the first k of them
    are converted. ``prompt_source``: who writes the chat prompts the original answers ("self", the recipe, or
    "templates"); ``loaded`` = (config, weights, tokenizer) replaces the pretrained checkpoint."""
    if repair_text not in REPAIR_TEXTS:
        raise ValueError(f"repair_text {repair_text!r}; valid choices: {', '.join(REPAIR_TEXTS)}")
    os.makedirs(out_dir, exist_ok=True)
    path = os.path.join(out_dir, "results.json")
    result = {}
    if os.path.exists(path):
        with open(path) as f:
            result = json.load(f)
    if result.get("k", k) != k:
        raise ValueError(f"{path} holds a run with k={result['k']}; use another --out or delete it")
    result.update(k=k, steps=steps)
    torch.manual_seed(seed)
    cfg, state, tok = loaded or load(source)
    result["n_layers"] = cfg.n_layers
    original = build(cfg, state)
    prompts = recipe_prompts(out_dir, original, tok, prompt_source, max_prompts, seed)
    chat = teacher_chat_blocks(out_dir, original, tok, prompts, chat_tokens, 256, progress)
    texts = Texts(tok, chat, eval_blocks, score_blocks)
    result["texts"] = {"held": len(texts.held), "ood": texts.ood_name, "ood_blocks": len(texts.ood),
                       "score_blocks": len(texts.score), "calib_blocks": min(calib_blocks, len(texts.calib))}
    teacher_logp = teacher_log_probs(original, texts.score)

    def save():
        write_json(path, result)

    def row(name, model):
        result.setdefault("rows", {})[name] = measure_all(model, tok, texts, teacher_logp, probe_limit)
        save()

    rows = result.setdefault("rows", {})
    if "original" in stages and "original" not in rows:
        row("original", original)
    if "choice" not in result:
        result["choice"] = choose_layers(cfg, state, texts.score, choose_k or k, every, candidates, progress)
        save()
    chosen = tuple(sorted(result["choice"]["order"][:k]))
    result["chosen"] = list(chosen)
    top = tuple(range(cfg.n_layers - k, cfg.n_layers))
    if "top" in stages and "top" not in rows:
        row("top", build(cfg, state, ladder_layers=top))
    if "chosen" in stages and "chosen" not in rows:
        row("chosen", build(cfg, state, ladder_layers=chosen))
    repaired_dir = os.path.join(out_dir, "repaired")
    needs_repair = any(s in stages for s in ("repaired", "repaired+distill"))
    settings = {"ridge": repair_ridge, "text": repair_text, "calib_blocks": calib_blocks}
    if needs_repair and is_model_dir(repaired_dir) and result.get("repair_settings", settings) != settings:
        raise ValueError(f"{repaired_dir} was repaired with {result['repair_settings']}, not {settings}: use "
                         f"another --out (or delete that directory and its rows)")
    if needs_repair and not is_model_dir(repaired_dir):
        model = build(cfg, state, ladder_layers=chosen)
        result["repair"] = repair(model, original, repair_tokens(texts, calib_blocks, repair_text),
                                  ridge=repair_ridge, progress=progress)
        result["repair_settings"] = settings
        save_model_dir(repaired_dir, model.cfg, model.state_dict(), {"stage": "repaired", "source": source})
        save()
    if "repaired" in stages and "repaired" not in rows:
        rcfg, rstate = load_model_dir(repaired_dir)
        row("repaired", build(rcfg, rstate))
    end = tok.convert_tokens_to_ids("<|im_end|>")
    chat_mask = reply_mask(texts.calib, tok.convert_tokens_to_ids("<|im_start|>"), end,
                           tuple(tok("assistant").input_ids), tok("\n").input_ids[0])

    def train(name, model, layers, n_steps, method="distill", sub=None, **changes):
        """One resumable stage of training (``experiment.RECIPE`` unless ``changes`` say otherwise), only
        ``layers``; returns its history."""
        ft = FinetuneConfig(**{"steps": n_steps, "method": method, "prompts": RECIPE["prompts"], "lr": RECIPE["lr"],
                               "chat_fraction": RECIPE["chat_fraction"], "seed": seed,
                               "warmup": warmup_steps(n_steps), "train_layers": list(layers),
                               "eval_every": max(1, n_steps // 4), "checkpoint_every": max(1, n_steps // 4),
                               **changes})
        run_dir = os.path.join(out_dir, name, *([sub] if sub else []))
        return finetune(model, texts.train, ft, run_dir, texts.score, teacher=original, chat_blocks=texts.calib,
                        progress=progress, desc=f"{name} {sub}" if sub else name, chat_mask=chat_mask)

    def saved(name):
        return is_model_dir(os.path.join(out_dir, name, "model"))

    def keep(name, model, history):
        result.setdefault("histories", {})[name] = history
        save_model_dir(os.path.join(out_dir, name, "model"), model.cfg, model.state_dict(), {"stage": name})
        save()

    def start_from(name):
        if name == "repaired":
            return build(*load_model_dir(repaired_dir))
        if name == "chosen":
            return build(cfg, state, ladder_layers=chosen)
        return build(*load_model_dir(os.path.join(out_dir, name, "model")))

    for name in TRAINED:
        if name not in stages or name in rows:
            continue
        if not saved(name):
            if name == "chosen+progressive":       # add the chosen layers in their order, a third at a time
                order, model, history = result["choice"]["order"][:k], start_from("chosen"), {}
                for g in range(1, PROGRESSIVE_GROUPS + 1):
                    layers = sorted(order[:round(k * g / PROGRESSIVE_GROUPS)])
                    n = max(1, steps // PROGRESSIVE_GROUPS + (steps % PROGRESSIVE_GROUPS
                                                              if g == PROGRESSIVE_GROUPS else 0))
                    model = build(cfg, model.state_dict(), ladder_layers=tuple(layers))
                    history[f"group{g}"] = train(name, model, layers, n, sub=f"group{g}")
            else:
                base, method, changes = TRAINED[name]
                if base in TRAINED and not saved(base):
                    raise ValueError(f"stage {name!r} starts from {base!r}: add that stage (it runs first)")
                model = start_from(base)
                history = train(name, model, chosen, steps, method, **changes)
            keep(name, model, history)
        row(name, start_from(name))
    save()
    return result


def table(result: dict) -> str:
    """One line per measured model: perplexities, generation score, probe."""
    names = {"original": "original", "top": f"top {result['k']}, converted",
             "chosen": f"chosen {result['k']}, converted", "repaired": "chosen, repaired (closed form)",
             "repaired+distill": "chosen, repaired + distill", "chosen+distill": "chosen + distill (the recipe)",
             "chosen+match": "chosen + module matching", "chosen+match+distill": "chosen + matching + distill",
             "chosen+progressive": "chosen, progressive + distill",
             "chosen+distill:replies": "chosen + distill, replies only"}
    lines = [f"{'model':<32} {'pydoc ppl':>9} {'LICENSE ppl':>11} {'gen KL':>7} {'probe':>7}"]
    for key, r in result.get("rows", {}).items():
        lines.append(f"{names.get(key, key):<32} {r['ppl']:9.2f} {r['ood_ppl']:11.2f} {r['gen_kl']:7.3f} "
                     f"{r['probe_correct']:>3d}/{r['probe_total']:<3d}")
    if "chosen" in result:
        lines.append(f"chosen layers: {','.join(map(str, result['chosen']))}")
    return "\n".join(lines)


def reuse_choice(choice_from: str, out_dir: str, k: int) -> None:
    """Start ``out_dir`` (a run of k layers) from ``choice_from``'s run: its layer choice, its original's row, the
    original's prompts and replies, so that only the stages asked for run (a longer budget, another k)."""
    from .frontier import share_teacher_chats
    with open(os.path.join(choice_from, "results.json")) as f:
        main = json.load(f)
    if k > len(main["choice"]["order"]):
        raise ValueError(f"{choice_from} chose {len(main['choice']['order'])} layers; k={k} needs more (choose_k)")
    share_teacher_chats(choice_from, out_dir)
    if not os.path.exists(os.path.join(out_dir, "results.json")):
        write_json(os.path.join(out_dir, "results.json"), {"k": k, "choice": main["choice"],
                                                            "rows": {"original": main["rows"]["original"]}})


def chosen_ks(choice_from: str, ks=None, recover_ks=None) -> tuple[list[int], list[int]]:
    """The chosen frontier's k's and recovered k's: those given, or of ``CHOSEN_KS`` and ``CHOSEN_RECOVER_KS`` the
    ones ``choice_from``'s run chose at most. Raises ValueError when a given k needs more layers than it chose."""
    with open(os.path.join(choice_from, "results.json")) as f:
        n = len(json.load(f)["choice"]["order"])
    ks = list(ks) if ks else [k for k in CHOSEN_KS if k <= n]
    recover_ks = list(recover_ks) if recover_ks is not None else [k for k in CHOSEN_RECOVER_KS if k in ks]
    if not ks or max(ks) > n:
        raise ValueError(f"{choice_from} chose {n} layers; the frontier's k's {ks} need at most that many (rerun "
                         f"ladder-edu convert there with a larger --choose, or give --ks)")
    return ks, recover_ks


def chosen_frontier(out_dir: str, choice_from: str, ks=CHOSEN_KS, recover_ks=CHOSEN_RECOVER_KS, steps: int = STEPS,
                    progress: bool = True, **kwargs) -> dict:
    """For each k: the top k and the first k layers of ``choice_from``'s greedy choice (``out_dir/results.json`` of
    a ``run_conversion`` with ``choose_k >= max(ks)``), converted; for the k in ``recover_ks`` also distilled (the
    recipe: ``chosen+distill``); and the speed-up the performance model predicts (``frontier.predicted_speedups``). Each k runs in
    ``out_dir/k<k>`` and resumes there; the original's text is shared with ``choice_from``."""
    from .frontier import predicted_speedups
    with open(os.path.join(choice_from, "results.json")) as f:
        main = json.load(f)
    order = main["choice"]["order"]
    if max(ks) > len(order):
        raise ValueError(f"{choice_from} chose {len(order)} layers; the frontier needs {max(ks)} (choose_k)")
    points = []
    for k in ks:
        d = os.path.join(out_dir, f"k{k}")
        reuse_choice(choice_from, d, k)
        stages = ("top", "chosen", "chosen+distill") if k in recover_ks else ("top", "chosen")
        r = run_conversion(d, k, steps, stages=stages, progress=progress, **kwargs)
        r["predicted"] = predicted_speedups(k, r["n_layers"])
        points.append(r)
    result = {"original": main["rows"]["original"], "points": points, "steps": steps}
    write_json(os.path.join(out_dir, "frontier.json"), result)
    return result
