"""The speed/accuracy frontier of a hybrid conversion: how many top layers to make ladder, for what speed-up?

For each k (top k of the model's layers ladder): the converted model's held-out perplexity and probe score; for the
k in ``recover_ks``, the same after the recovery recipe (one budget for every k); and the tokens/s speed-up over
the standard model that the performance model predicts for that hybrid (``perf.model.perfmodel.predict(...,
ladder_layers=k)``), for the model's own shape (SmolLM2: TP 3, the largest that divides its 9 heads and 3 kv heads)
and for Llama-3-8B's shape at TP 8 (k scaled to its 32 layers), on 8 H100s with NVLink, batch 1 and 16.

Every point is written to ``out_dir/k<k>/point.json`` as soon as it is done, and fine-tunes resume from their
checkpoints, so an interrupted run continues where it stopped. The recipe (``experiment.RECIPE`` unless given):
distillation from the original model (full-vocabulary KL on training text and on replies the original wrote to
varied instructions), training only the converted layers. Each recipe trains in its own folder
``k<k>/<recipe_name>``; a point recovered by another recipe is recovered again.
"""
from __future__ import annotations

import json
import os

from ..models.config import get_config
from ..perf.model.hardware import HARDWARE
from ..perf.model.perfmodel import predict
from .experiment import RECIPE, build, load, measure, recipe_name, run_recovery
from .evaluate import blocks, corpus_split
from .options import KS, RECOVER_KS, FrontierOptions, RecoveryOptions  # noqa: F401  (KS: read here too)
from ..util.atomic import write_json

SHAPES = (("smollm2-135m", 3), ("llama-3-8b", 8))


def predicted_speedups(k: int, n_layers: int, batches=(1, 16)) -> dict[str, float]:
    """{"<shape> TP<n> b<batch>": tokens/s speed-up of the hybrid over standard} (module docstring)."""
    out = {}
    for shape, tp in SHAPES:
        cfg = get_config(shape)
        kk = round(k * cfg.n_layers / n_layers)
        for b in batches:
            p = predict(cfg, HARDWARE["h100-nvlink"], tp, b, variants=("standard", "ladder"), ladder_layers=kk)
            out[f"{shape} TP{tp} b{b}"] = p["ladder"].speedup_vs_standard
    return out


def share_teacher_chats(out_dir: str, dest: str) -> None:
    """The original's prompts and chat replies do not depend on k: copy any already written into ``dest``."""
    import glob
    import shutil
    os.makedirs(dest, exist_ok=True)
    for pattern in ("teacher_chats_*.safetensors", "self_prompts_*.json"):
        for path in glob.glob(os.path.join(out_dir, "**", pattern), recursive=True):
            target = os.path.join(dest, os.path.basename(path))
            if not os.path.exists(target):
                shutil.copyfile(path, target)


def _read(path):
    if os.path.exists(path):
        with open(path) as f:
            return json.load(f)
    return None


def frontier(opts: FrontierOptions, progress: bool = True) -> dict:
    """Compute (or resume) the frontier of ``opts`` in ``opts.out``; returns {"original": row, "points": [{k,
    converted, recovered?, predicted}], "steps", "recipe"} and writes it to ``opts.out/frontier.json``."""
    out_dir, ks, recover_ks, steps = opts.out, opts.ks, opts.recover_ks, opts.steps
    eval_blocks, probe_limit = opts.eval_blocks, opts.probe_limit
    recipe = {**RECIPE, **opts.finetune}
    name = recipe_name(recipe)
    loaded = load(opts.source)
    cfg, _, tok = loaded
    if max(set(ks) | set(recover_ks)) > cfg.n_layers:
        raise ValueError(f"k must be <= {cfg.n_layers}, the model's layers")
    held = blocks(tok, corpus_split()[1], limit=eval_blocks)
    os.makedirs(out_dir, exist_ok=True)
    original = _read(os.path.join(out_dir, "original.json"))
    if original is None:
        original = measure(build(cfg, loaded[1]), tok, held, probe_limit)
        write_json(os.path.join(out_dir, "original.json"), original)
    points = []
    for k in sorted(set(ks) | set(recover_ks)):
        path = os.path.join(out_dir, f"k{k}", "point.json")
        point = _read(path) or {"k": k}
        if "converted" not in point:
            point["converted"] = measure(build(cfg, loaded[1], ladder_layers=k), tok, held, probe_limit)
            write_json(path, point)
        point["predicted"] = predicted_speedups(k, cfg.n_layers)      # the model as it is now, not as cached
        if k in recover_ks and (point.get("recovered_by") != name or point.get("steps") != steps):
            dest = os.path.join(out_dir, f"k{k}", name)
            share_teacher_chats(out_dir, dest)
            run = "plain" if recipe["method"] == "plain" else "distill"
            res = run_recovery(RecoveryOptions(out=dest, ladder_layers=k, steps=steps, runs=(run,), source=opts.source,
                                               eval_blocks=eval_blocks, probe_limit=probe_limit,
                                               max_prompts=opts.max_prompts, finetune=recipe),
                               progress, loaded=loaded, known_rows={"original": original,
                                                                    "converted": point["converted"]})
            point.update(recovered=res["rows"][run], recovered_by=name, steps=steps)
            write_json(path, point)
        points.append(point)
    result = {"original": original, "points": points, "steps": steps, "recipe": {**recipe, "name": name,
              "freeze_below": "n_layers - k"}, "eval_blocks": eval_blocks, "probe_limit": probe_limit}
    write_json(os.path.join(out_dir, "frontier.json"), result)
    return result


def table(result: dict) -> str:
    o = result["original"]
    keys = list(result["points"][0]["predicted"])
    head = f"{'k':>3} {'ppl conv':>9} {'probe conv':>10} {'ppl rec':>8} {'probe rec':>9} " + \
        " ".join(f"{k:>22}" for k in keys)
    lines = [f"original: ppl {o['ppl']:.2f}, probe {o['probe_correct']}/{o['probe_total']}; recovered: "
             f"{result['recipe']['name']}, {result['steps']} steps, only the converted layers trained", head]
    for p in result["points"]:
        c, r = p["converted"], p.get("recovered")
        rec = f"{r['ppl']:8.2f} {r['probe_correct']:>5d}/{r['probe_total']:<3d}" if r else f"{'-':>8} {'-':>9}"
        lines.append(f"{p['k']:3d} {c['ppl']:9.2f} {c['probe_correct']:>6d}/{c['probe_total']:<3d} {rec} "
                     + " ".join(f"{p['predicted'][k]:21.3f}x" for k in keys))
    return "\n".join(lines)
