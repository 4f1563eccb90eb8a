"""Evaluate any model on any text and any probe: what ``ladder-edu evaluate`` runs.

A model SPEC is ``original`` (the pretrained checkpoint), ``converted:K`` (the same weights, top K layers ladder),
``converted:4,5,6`` (those layers ladder)
or a model directory written by ``ladder-edu finetune`` (``safe_io``: config.json + model.safetensors). Each text
file gives a held-out perplexity and mean loss in blocks of 256 tokens (as in notebook 05); a probe file is a JSON
list of {"q": question, "a": [accepted answers]} (``data/probe.json``'s format), scored as ``evaluate.run_probe``.
"""
from __future__ import annotations

import json
import math
import os

from .evaluate import HELD_OUT, blocks, corpus_split, mean_loss, run_probe
from .safe_io import load_model_dir
from .options import BLOCK, EvaluateOptions


def read_text(path: str) -> str:
    """A text file's content; a clear error if it is missing, unreadable, not text or empty."""
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except FileNotFoundError:
        raise ValueError(f"no such text file: {path!r}") from None
    except (OSError, UnicodeDecodeError) as e:
        raise ValueError(f"cannot read {path!r} as UTF-8 text ({e})") from None
    if not text.strip():
        raise ValueError(f"{path!r} is empty: a text file needs at least one block of {BLOCK} tokens")
    return text


def read_probe(path: str) -> list[dict]:
    """A probe file, checked: a non-empty JSON list of {"q": str, "a": [str, ...]}."""
    try:
        with open(path, encoding="utf-8") as f:
            probe = json.load(f)
    except FileNotFoundError:
        raise ValueError(f"no such probe file: {path!r}") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError(f"cannot read probe file {path!r} as JSON ({e})") from None
    fmt = 'a JSON list of {"q": "question", "a": ["accepted answer", ...]}, as data/probe.json'
    if not isinstance(probe, list) or not probe:
        raise ValueError(f"probe file {path!r} must be {fmt}")
    for i, item in enumerate(probe):
        if not (isinstance(item, dict) and isinstance(item.get("q"), str) and isinstance(item.get("a"), list)
                and item["a"] and all(isinstance(a, str) for a in item["a"])):
            raise ValueError(f"probe file {path!r}, item {i}: {item!r} is not {{'q': str, 'a': [str, ...]}}; "
                             f"the file must be {fmt}")
    return probe


def resolve(spec: str, source: str = "smollm2"):
    """(name, config, full weights) for a model SPEC (module docstring)."""
    from ..models.pretrained import load_checkpoint
    if spec == "original" or spec.startswith("converted:"):
        from ..models.config import parse_ladder_layers
        cfg, state = load_checkpoint(source)
        try:
            k = 0 if spec == "original" else parse_ladder_layers(spec.split(":", 1)[1], cfg.n_layers)
        except ValueError as e:
            raise ValueError(f"model spec {spec!r}: {e}") from None
        return spec, cfg.replace(ladder_layers=k, max_seq_len=min(cfg.max_seq_len, 1024)), state
    if os.path.isdir(spec):
        cfg, state = load_model_dir(spec)
        return spec, cfg, state
    raise ValueError(f"model spec {spec!r}: valid choices are original, converted:K (the top K layers made "
                     f"ladder), converted:I,J,.. (those layers), or a "
                     f"directory written by ladder-edu finetune (config.json + model.safetensors)")


def assess(opts: EvaluateOptions) -> dict:
    """{"model", "texts": {file: {"ppl", "loss", "blocks"}}, "probe": {"correct", "total", "score", "replies"}}
    of ``opts.model``. Without ``opts.texts``: the held-out split of Python's documentation (notebook 05's)."""
    spec, texts, probe, source = opts.model, opts.texts, opts.probe, opts.source
    from ..models.model import Transformer
    from ..models.pretrained import load_tokenizer
    named = {p: read_text(p) for p in texts} if texts else {HELD_OUT: corpus_split()[1]}
    items = read_probe(probe) if probe else None
    name, cfg, state = resolve(spec, source)
    tok = load_tokenizer(source)
    model = Transformer.from_full_state_dict(cfg, state).eval()
    out = {"model": name, "ladder_layers": cfg.ladder_layers, "n_layers": cfg.n_layers, "texts": {}}
    for path, text in named.items():
        data = blocks(tok, text, limit=opts.eval_blocks)
        if len(data) == 0:
            raise ValueError(f"{path!r} is shorter than one block of {BLOCK} tokens; give a longer text")
        loss = mean_loss(model, data)
        out["texts"][path] = {"ppl": math.exp(loss), "loss": loss, "blocks": len(data)}
    res = run_probe(model, tok, items, limit=opts.probe_limit)
    out["probe"] = {k: res[k] for k in ("correct", "total", "score", "replies")}
    return out


def table(result: dict) -> str:
    lines = [f"model {result['model']} (ladder layers: {result['ladder_layers']} of {result['n_layers']})"]
    for path, r in result["texts"].items():
        lines.append(f"  {path}: perplexity {r['ppl']:.2f}, mean loss {r['loss']:.3f} ({r['blocks']} blocks)")
    p = result["probe"]
    lines.append(f"  probe: {p['correct']}/{p['total']} correct")
    return "\n".join(lines)
