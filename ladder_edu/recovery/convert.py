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
from .evaluate import ChatFormat, blocks, corpus_split, mean_loss, out_of_domain_text
from .experiment import RECIPE, build, load, measure, recipe_prompts, teacher_chat_blocks
from .distill import reply_mask
from .finetune import FinetuneConfig, finetune
from .ftconfig import warmup_steps
from .repair import repair
from .report import labels, reading, table  # noqa: F401 - a run's table, read beside its stages
from .safe_io import is_model_dir, load_model_dir, save_model_dir
from ..util.atomic import write_json
from .options import (BLOCK, CHOSEN_KS, CHOSEN_RECOVER_KS, MEASURED, RECIPE_STAGES, REPAIR_TEXTS,  # noqa: F401
                      STAGES, STEPS, TRAINED, ConvertOptions, Stage)


class Texts:
    """Everything a model is measured on, tokenized once."""

    def __init__(self, tok, chat: torch.Tensor, eval_blocks: int, score_blocks: int):
        train_text, held_text = corpus_split()
        self.train = blocks(tok, train_text)
        self.held = blocks(tok, held_text, limit=eval_blocks)
        self.ood_name, ood = out_of_domain_text()
        self.ood = blocks(tok, ood, limit=eval_blocks)
        if len(chat) < 2:
            raise ValueError(f"the original's text fills {len(chat)} block(s) of {BLOCK} tokens; at least 2 are needed "
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
    """``experiment.measure`` (the pydoc held-out perplexity, the probe), and the perplexity on the out-of-domain
    text and the generation score."""
    ood = mean_loss(model, texts.ood)
    return {**measure(model, tok, texts.held, probe_limit, replies=8), "ood_ppl": math.exp(ood), "ood_loss": ood,
            "gen_kl": divergence(model, teacher_logp, texts.score)}


def convert(opts: ConvertOptions, progress: bool = True, loaded=None) -> dict:
    """``ladder-edu convert`` and ``ladder-edu finetune``'s recipe: one run of ``opts`` (``ConvertOptions``),
    started from ``opts.choice_from``'s layer choice if it names one."""
    opts.check()
    if opts.choice_from:
        reuse_choice(opts.choice_from, opts.out, opts.choose)
    return run_conversion(opts, loaded, progress)


def run_conversion(opts: ConvertOptions, loaded=None, progress: bool = True) -> dict:
    """The stages of the module docstring that are in ``opts.stages``, resumably, in ``opts.out``; returns the
    results dict. ``opts.choose_k`` (default ``opts.choose``) layers are chosen greedily from ``opts.candidates``
    (default: all); the first ``opts.choose`` of them are converted. ``loaded`` = (config, weights, tokenizer)
    replaces the pretrained checkpoint."""
    return Conversion(opts, loaded, progress).run()


class Conversion:
    """One conversion in ``opts.out``: the texts and the original, the results (saved after every stage), and the
    stages: measured ones (``options.MEASURED``), the layer choice, the repair, and the trained ones
    (``options.TRAINED``), each resumed from what the directory holds."""

    def __init__(self, opts: ConvertOptions, loaded=None, progress: bool = True):
        self.opts, self.progress, k = opts, progress, opts.choose
        os.makedirs(opts.out, exist_ok=True)
        self.path = os.path.join(opts.out, "results.json")
        self.result = {}
        if os.path.exists(self.path):
            with open(self.path) as f:
                self.result = json.load(f)
        if self.result.get("k", k) != k:
            raise ValueError(f"{self.path} holds a run with k={self.result['k']}; use another --out or delete it")
        self.result.update(k=k, steps=opts.steps)
        torch.manual_seed(opts.seed)
        self.cfg, self.state, self.tok = loaded or load(opts.source)
        self.result["n_layers"] = self.cfg.n_layers
        self.original = build(self.cfg, self.state)
        prompts = recipe_prompts(opts.out, self.original, self.tok, opts.prompt_source, opts.max_prompts, opts.seed)
        chat = teacher_chat_blocks(opts.out, self.original, self.tok, prompts, opts.chat_tokens, BLOCK, progress)
        self.texts = Texts(self.tok, chat, opts.eval_blocks, opts.score_blocks)
        self.result["texts"] = {"held": len(self.texts.held), "ood": self.texts.ood_name,
                                "ood_blocks": len(self.texts.ood), "score_blocks": len(self.texts.score),
                                "calib_blocks": min(opts.calib_blocks, len(self.texts.calib))}
        self.teacher_logp = teacher_log_probs(self.original, self.texts.score)
        self.repaired_dir = os.path.join(opts.out, "repaired")

    def save(self):
        write_json(self.path, self.result)

    def row(self, name: str, model):
        self.result.setdefault("rows", {})[name] = measure_all(model, self.tok, self.texts, self.teacher_logp,
                                                               self.opts.probe_limit)
        self.save()

    def run(self) -> dict:
        opts, result, cfg, state = self.opts, self.result, self.cfg, self.state
        stages, k = opts.stages, opts.choose
        rows = result.setdefault("rows", {})
        if "original" in stages and "original" not in rows:
            self.row("original", self.original)
        if "choice" not in result:
            result["choice"] = choose_layers(cfg, state, self.texts.score, opts.choose_k or k, opts.every,
                                             opts.candidates, self.progress)
            self.save()
        self.order = result["choice"]["order"][:k]
        self.chosen = tuple(sorted(self.order))
        result["chosen"] = list(self.chosen)
        if "top" in stages and "top" not in rows:
            self.row("top", build(cfg, state, ladder_layers=tuple(range(cfg.n_layers - k, cfg.n_layers))))
        if "chosen" in stages and "chosen" not in rows:
            self.row("chosen", build(cfg, state, ladder_layers=self.chosen))
        if any(s in stages for s in ("repaired", "repaired+distill")):
            self.repair()
        if "repaired" in stages and "repaired" not in rows:
            self.row("repaired", self.start_from("repaired"))
        fmt = ChatFormat.of(self.tok)
        self.chat_mask = reply_mask(self.texts.calib, fmt.start, fmt.end, fmt.assistant, fmt.newline)
        for name, stage in TRAINED.items():
            if name not in stages or name in rows:
                continue
            if not self.saved(name):
                if stage.start in TRAINED and not self.saved(stage.start):
                    raise ValueError(f"stage {name!r} starts from {stage.start!r}: add that stage (it runs first)")
                model, history = self.train_stage(name, stage)
                result.setdefault("histories", {})[name] = history
                save_model_dir(self.model_dir(name), model.cfg, model.state_dict(), {"stage": name})
                self.save()
            self.row(name, self.start_from(name))
        self.save()
        return result

    def repair(self):
        """The chosen model with every converted module's output projection refit in closed form, saved once."""
        opts = self.opts
        settings = {"ridge": opts.repair_ridge, "text": opts.repair_text, "calib_blocks": opts.calib_blocks}
        if is_model_dir(self.repaired_dir):
            if self.result.get("repair_settings", settings) != settings:
                raise ValueError(f"{self.repaired_dir} was repaired with {self.result['repair_settings']}, not "
                                 f"{settings}: use another --out (or delete that directory and its rows)")
            return
        model = build(self.cfg, self.state, ladder_layers=self.chosen)
        self.result["repair"] = repair(model, self.original,
                                       repair_tokens(self.texts, opts.calib_blocks, opts.repair_text),
                                       ridge=opts.repair_ridge, progress=self.progress)
        self.result["repair_settings"] = settings
        save_model_dir(self.repaired_dir, model.cfg, model.state_dict(), {"stage": "repaired", "source": opts.source})
        self.save()

    def model_dir(self, name: str) -> str:
        return os.path.join(self.opts.out, name, "model")

    def saved(self, name: str) -> bool:
        return is_model_dir(self.model_dir(name))

    def start_from(self, name: str):
        if name == "repaired":
            return build(*load_model_dir(self.repaired_dir))
        if name == "chosen":
            return build(self.cfg, self.state, ladder_layers=self.chosen)
        return build(*load_model_dir(self.model_dir(name)))

    def train_stage(self, name: str, stage: Stage):
        """Train ``stage`` from its start: its layers converted in ``stage.groups`` groups (in their order of
        choice), ``opts.steps`` split among them; returns (model, history)."""
        k, steps, groups = self.opts.choose, self.opts.steps, stage.groups
        model, histories = self.start_from(stage.start), {}
        for g in range(1, groups + 1):
            layers = sorted(self.order[:round(k * g / groups)])
            n = max(1, steps // groups + (steps % groups if g == groups else 0))
            sub = f"group{g}" if groups > 1 else None
            if groups > 1:
                model = build(self.cfg, model.state_dict(), ladder_layers=tuple(layers))
            histories[sub] = self.train(name, model, layers, n, stage.method, sub, **stage.changes)
        return model, histories if groups > 1 else histories[None]

    def train(self, name: str, model, layers, n_steps: int, method: str, sub: str | None, **changes) -> dict:
        """One resumable fine-tune (``experiment.RECIPE`` unless ``changes`` say otherwise) of ``layers`` only;
        returns its history."""
        ft = FinetuneConfig(**{"steps": n_steps, "method": method, "prompts": RECIPE["prompts"], "lr": RECIPE["lr"],
                               "chat_fraction": RECIPE["chat_fraction"], "seed": self.opts.seed,
                               "warmup": warmup_steps(n_steps), "train_layers": list(layers),
                               "eval_every": max(1, n_steps // 4), "checkpoint_every": max(1, n_steps // 4),
                               **changes})
        run_dir = os.path.join(self.opts.out, name, *([sub] if sub else []))
        return finetune(model, self.texts.train, ft, run_dir, self.texts.score, teacher=self.original,
                        chat_blocks=self.texts.calib, progress=self.progress, desc=f"{name} {sub}" if sub else name,
                        chat_mask=self.chat_mask)


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
                    progress: bool = True, loaded=None, **options) -> dict:
    """For each k: the top k and the first k layers of ``choice_from``'s greedy choice (``out_dir/results.json`` of
    a ``run_conversion`` with ``choose_k >= max(ks)``), converted; for the k in ``recover_ks`` also distilled (the
    recipe: ``chosen+distill``); and the speed-up the performance model predicts (``frontier.predicted_speedups``). Each k runs in
    ``out_dir/k<k>`` and resumes there; the original's text is shared with ``choice_from``. ``options``: other
    ``ConvertOptions`` fields (eval_blocks, probe_limit, ...)."""
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
        r = run_conversion(ConvertOptions(out=d, choose=k, steps=steps, stages=stages, **options), loaded, progress)
        r["predicted"] = predicted_speedups(k, r["n_layers"])
        points.append(r)
    result = {"original": main["rows"]["original"], "points": points, "steps": steps}
    write_json(os.path.join(out_dir, "frontier.json"), result)
    return result
