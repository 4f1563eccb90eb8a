"""The Ladder paper's conversion story on SmolLM2-135M-Instruct: convert, watch it break, recover, serve on 3 ranks.

1. original: the pretrained standard model;  2. converted: the same weights with the top k layers ladder
   (``ladder_layers=k``: a config change, as in the Ladder authors' Hybrid-Ladder Llama);  3. recovered: the converted model fine-tuned, by plain
   next-token training (``plain``) or by distillation from the original (``distill``);  4. control: the
   unconverted model fine-tuned with plain training on the same data and budget, so that recovery is not confused
   with adapting to the corpus.

    recovery (perplexity) = (ppl_converted - ppl_recovered) / (ppl_converted - ppl_control)
    recovery (mean loss)  = the same with mean held-out loss (log perplexity): stricter, as loss is log-scaled.
"""
from __future__ import annotations

import hashlib
import math
import os

import torch

from .distill import chat_prompts, pack, teacher_chats
from .evaluate import CHAT, ChatFormat, blocks, corpus_split, mean_loss, run_probe  # noqa: F401  (CHAT: notebooks)
from ..util.atomic import write_json
from .finetune import FinetuneConfig, finetune
from .ftconfig import RECIPE, warmup_steps  # noqa: F401  (RECIPE: the recovery commands read it here)
from .options import RUNS, RecoveryOptions  # noqa: F401  (RUNS: the command line reads it here)
from .safe_io import load_model_dir, load_tensors, save_model_dir, save_tensors
from ..models.generate import generate
from ..models.model import Transformer
from ..models.pretrained import load_checkpoint, load_tokenizer



def recipe_name(recipe: dict) -> str:
    """A short folder name for a recipe, e.g. distill-self-lr0.0002-cf0.75 (runs of different recipes never mix)."""
    short = {"prompts": "", "lr": "lr", "chat_fraction": "cf", "hidden_weight": "hw", "lora_rank": "lora",
             "divergence": "", "method": ""}
    return "-".join(f"{short.get(k, k)}{v}" for k, v in recipe.items())


def load(source: str = "smollm2", max_seq_len: int = 1024):
    """(config, full weights, tokenizer) of a pretrained checkpoint (``pretrained.load_checkpoint``)."""
    cfg, state = load_checkpoint(source)
    return cfg.replace(max_seq_len=min(cfg.max_seq_len, max_seq_len)), state, load_tokenizer(source)


def build(cfg, state, **changes) -> Transformer:
    """A one-device model of ``cfg`` with ``changes`` (for example ladder_layers=15) on a copy of the weights
    (models built from one state dict must not share storage: training one would change the others)."""
    return Transformer.from_full_state_dict(cfg.replace(**changes), {k: v.clone() for k, v in state.items()})


def measure(model, tokenizer, held_out: torch.Tensor, probe_limit: int | None = None, replies: int = 5) -> dict:
    """Held-out mean loss and perplexity, and the probe score (with the first ``replies`` replies)."""
    loss = mean_loss(model, held_out)
    probe = run_probe(model, tokenizer, limit=probe_limit)
    return {"loss": loss, "ppl": math.exp(loss), "probe": probe["score"], "probe_correct": probe["correct"],
            "probe_total": probe["total"], "replies": probe["replies"][:replies]}


def recovery(converted: float, recovered: float, control: float) -> float:
    """The fraction of the gap between the converted model and the control that fine-tuning closed."""
    return (converted - recovered) / (converted - control)


def run_recovery(opts: RecoveryOptions, progress: bool = True, on_eval=None, loaded=None,
                 known_rows: dict | None = None) -> dict:
    """The whole experiment (``RecoveryOptions``); every fine-tune resumes from ``opts.out/<run>`` if it was
    interrupted, and the results are written to ``opts.out/results.json``. Every run uses the recipe (the
    "distill" run its method, the others plain) and trains only the converted layers, unless ``opts.finetune``
    says otherwise. Returns {"rows": {name: measure(...)}, "histories": ...}.
    ``loaded`` = (cfg, state, tokenizer) and ``known_rows`` (original, converted) skip work already done."""
    out_dir, ladder_layers, steps, runs, seed = opts.out, opts.ladder_layers, opts.steps, opts.runs, opts.seed
    torch.manual_seed(seed)
    cfg, state, tok = loaded or load(opts.source)
    ft_overrides = {**RECIPE, "freeze_below": None, **opts.finetune}            # the recipe unless told otherwise
    if ft_overrides["freeze_below"] is None:                                   # train the converted layers only
        ft_overrides["freeze_below"] = cfg.n_layers - ladder_layers
    train_text, held_text = corpus_split()
    train, held = blocks(tok, train_text), blocks(tok, held_text, limit=opts.eval_blocks)
    original = build(cfg, state)
    rows, histories = dict(known_rows or {}), {}
    if "original" not in rows:
        rows["original"] = measure(original, tok, held, opts.probe_limit)
    if "converted" not in rows:
        rows["converted"] = measure(build(cfg, state, ladder_layers=ladder_layers), tok, held, opts.probe_limit)
    chat = prompt_ids = None
    method = ft_overrides.pop("method")                                         # how the "distill" run learns
    if "distill" in runs:
        prompts = recipe_prompts(out_dir, original, tok, ft_overrides["prompts"], opts.max_prompts, seed)
        if method == "onpolicy":                                                # the student answers these itself
            prompt_ids = ([ChatFormat.prompt_ids(tok, p) for p in prompts], ChatFormat.of(tok).end)
        chat = teacher_chat_blocks(out_dir, original, tok, prompts, opts.chat_tokens, train.shape[1], progress)
    for run in runs:
        ft = FinetuneConfig(steps=steps, method=method if run == "distill" else "plain", seed=seed,
                            warmup=warmup_steps(steps), **ft_overrides)
        model = build(cfg, state, ladder_layers=0 if run == "control" else ladder_layers)
        histories[run] = finetune(model, train, ft, os.path.join(out_dir, run), held, teacher=original,
                                  chat_blocks=chat, progress=progress, desc=run, prompts=prompt_ids,
                                  on_eval=(lambda h, run=run: on_eval(run, h)) if on_eval else None)
        rows[run] = measure(model, tok, held, opts.probe_limit)
        save_model_dir(os.path.join(out_dir, run), model.cfg, model.state_dict(),
                       {"run": run, "steps": steps, "source": opts.source})  # `ladder-edu evaluate --model DIR`
        del model
    result = {"ladder_layers": ladder_layers, "steps": steps, "rows": rows, "histories": histories,
              "n_chat_blocks": 0 if chat is None else len(chat), "recovery": {}}
    if "control" in rows:
        for run in ("plain", "distill"):
            if run in rows:
                result["recovery"][run] = {
                    key: recovery(rows["converted"][key], rows[run][key], rows["control"][key])
                    for key in ("ppl", "loss")}
    write_json(os.path.join(out_dir, "results.json"), result)
    return result


def teacher_chat_blocks(out_dir: str, original, tok, prompts: list[str], chat_tokens: int, block: int,
                        progress: bool = True) -> torch.Tensor:
    """[n, block] blocks of the original's chat turns (each prompt and its greedy reply of at most ``chat_tokens``),
    written once to ``out_dir`` (named by the prompts' hash: new prompts, new replies) and read back after."""
    key = hashlib.sha1("\n".join(prompts).encode()).hexdigest()[:8]
    path = os.path.join(out_dir, f"teacher_chats_{chat_tokens}_{key}.safetensors")
    if os.path.exists(path):
        return load_tensors(path)[0]["blocks"]
    chat = pack(teacher_chats(original, tok, prompts, chat_tokens, progress), block)
    save_tensors(path, {"blocks": chat}, {"prompts": len(prompts), "chat_tokens": chat_tokens})
    return chat


def recipe_prompts(out_dir: str, original, tok, source: str, max_prompts: int | None, seed: int) -> list[str]:
    """The chat prompts: from templates (``distill.chat_prompts``: everyday nouns and the training split's Python
    topics) or written by the original model (``prompts.self_prompts``, saved to ``out_dir`` and reused)."""
    if source == "templates":
        from pydoc_data.topics import topics
        names = [k for i, k in enumerate(sorted(topics)) if i % 5 != 0]          # training topics only
        return chat_prompts(names)[:max_prompts]
    import json
    from .prompts import SUBJECTS, self_prompts
    path = os.path.join(out_dir, f"self_prompts_{seed}.json")
    if not os.path.exists(path):
        subjects = SUBJECTS if max_prompts is None else SUBJECTS[:max(1, max_prompts // 8)]
        write_json(path, self_prompts(original, tok, None, seed, subjects))
    with open(path) as f:
        return json.load(f)[:max_prompts]


def table(result: dict) -> str:
    """original / converted / recovered / control: perplexity, mean loss, probe score; then the recoveries."""
    lines = [f"{'model':<22} {'ppl':>8} {'loss':>7} {'probe':>9}"]
    names = {"plain": "recovered (plain)", "distill": "recovered (distill)", "control": "control (no ladder)"}
    for key, r in result["rows"].items():
        lines.append(f"{names.get(key, key):<22} {r['ppl']:8.2f} {r['loss']:7.3f} "
                     f"{r['probe_correct']:>4d}/{r['probe_total']:<4d}")
    for run, rec in result["recovery"].items():
        lines.append(f"recovery by {run}: {100 * rec['ppl']:.0f}% of the perplexity gap, "
                     f"{100 * rec['loss']:.0f}% of the mean-loss gap")
    return "\n".join(lines)


def side_by_side(models: dict, tokenizer, questions: list[str], max_new_tokens: int = 24, width: int = 60) -> str:
    """Each question, then every model's greedy reply (first line, cut to ``width`` characters), one per line."""
    from .evaluate import ask
    lines = []
    for q in questions:
        lines.append(f"Q: {q}")
        for name, model in models.items():
            reply = ask(model, tokenizer, q, max_new_tokens).strip().split("\n")[0]
            lines.append(f"   {name:<12} {reply[:width] + ('...' if len(reply) > width else '')}")
    return "\n".join(lines)


def serve_worker(model_dir: str, prompt: list[int], max_new_tokens: int) -> list[int]:
    """Runs on every rank: rank r's shard of a saved model directory, greedy generation, overlapped all-reduces."""
    from ..tp.parallel import TPGroup
    from ..tp.launch import current_device
    cfg, state = load_model_dir(model_dir)
    model = Transformer.from_full_state_dict(cfg, state, TPGroup.from_dist(), device=current_device())
    return generate(model, torch.tensor([prompt]), max_new_tokens)[0].tolist()


def serve_tp(model_dir: str, prompt: list[int], max_new_tokens: int = 16, tp: int = 3,
             timeout_s: float = 300.0) -> list[int]:
    """Greedy tokens of a saved model directory (``safe_io.save_model_dir``) on ``tp`` real ranks."""
    from ..tp import launch
    load_model_dir(model_dir)[0].check_tp(tp)
    results = launch.run(serve_worker, tp, model_dir=model_dir, prompt=prompt, max_new_tokens=max_new_tokens,
                         options=launch.LaunchOptions(timeout_s=timeout_s))
    if any(r != results[0] for r in results):
        raise RuntimeError("ranks generated different tokens")
    return results[0]
