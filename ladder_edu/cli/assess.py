"""``ladder-edu evaluate`` (any model's perplexity and probe score) and ``from-scratch`` (small models trained
from scratch): measuring models, beside the conversion commands of ``cli.recovery``."""
from __future__ import annotations

import argparse
import os
from dataclasses import asdict

from ..recovery.from_scratch import ARCHS_COMPARED, OUT, SEEDS, STEPS
from ..recovery.options import BLOCK, EVAL_BLOCKS, SOURCE, EvaluateOptions
from .common import add_plan, choice_list, in_file, int_list, ints, out_dir, out_file, say, show_plan, source, write_json


def model_spec(text: str) -> str:
    """original, converted:K (K an integer >= 0), converted:I,J,.. (layer indices), or an existing directory."""
    k = text.partition(":")[2]
    layers = k.replace(",", "")
    if text == "original" or (text.startswith("converted:") and layers.isdigit()) or os.path.isdir(text):
        return text
    raise argparse.ArgumentTypeError(f"must be original, converted:K (the top K layers made ladder, K >= 0), "
                                     f"converted:I,J,.. (those layers) or a model directory written by ladder-edu "
                                     f"finetune, got {text!r}")


def measuring() -> argparse.ArgumentParser:
    """The parent parser of every command that measures a model: held-out blocks, probe questions, JSON output."""
    p = argparse.ArgumentParser(add_help=False)
    p.add_argument("--eval-blocks", type=ints(1), default=EVAL_BLOCKS,
                   help=f"held-out blocks of {BLOCK} tokens per text (default: {EVAL_BLOCKS})")
    p.add_argument("--probe-limit", type=ints(1), default=None,
                   help="ask only the first N probe questions (default: all)")
    p.add_argument("--json", metavar="FILE", type=out_file, help="also write the results to FILE as JSON")
    return p


def add_parsers(sub):
    ev = sub.add_parser("evaluate", help="perplexity on any text and a probe score, for any model",
                        parents=[measuring()],
                        description="Evaluate a model: original, converted:K (top K layers ladder, no training) or a "
                                    "directory written by ladder-edu finetune. Perplexity and mean loss on each "
                                    f"--text file (blocks of {BLOCK} tokens; default: the held-out split of Python's "
                                    "documentation) and the score on a probe file (data/probe.json's format; "
                                    "default: that file).")
    ev.add_argument("--model", required=True, metavar="SPEC", type=model_spec,
                    help="original, converted:K, or a model directory (config.json + model.safetensors)")
    ev.add_argument("--text", action="append", type=in_file, metavar="FILE", help="a UTF-8 text file (repeatable)")
    ev.add_argument("--probe", type=in_file, metavar="FILE",
                    help='a JSON list of {"q": question, "a": [accepted answers]} (default: data/probe.json)')
    ev.add_argument("--source", default=SOURCE, type=source,
                    help=f"the pretrained checkpoint for original and converted:K (default: {SOURCE})")
    add_plan(ev)

    fs = sub.add_parser("from-scratch", help="train small standard, parallel, ladder and Kraken models from scratch",
                        description="The Ladder paper's Table 3 in miniature: identical data (bytes of Python's "
                                    "documentation), budget and seeds; validation perplexity per seed.")
    fs.add_argument("--steps", type=ints(1), default=STEPS, help=f"optimizer steps per model (default: {STEPS})")
    fs.add_argument("--seeds", default=list(SEEDS), type=int_list(0),
                    help=f"comma-separated seeds (default: {','.join(map(str, SEEDS))})")
    fs.add_argument("--archs", default=list(ARCHS_COMPARED), type=choice_list(ARCHS_COMPARED),
                    help="architectures (default: all four)")
    fs.add_argument("--out", default=OUT, type=out_dir,
                    help=f"checkpoints and results (default: {OUT})")
    fs.add_argument("--json", metavar="FILE", type=out_file, help="also write the results to FILE as JSON")
    add_plan(fs)


def cmd_from_scratch(args) -> int:
    from ..recovery.from_scratch import compare, table
    if args.plan:
        return show_plan("from-scratch", [f"{k} = {getattr(args, k)!r}" for k in ("out", "steps", "seeds", "archs",
                                                                                   "json")])
    result = compare(args.out, args.steps, args.seeds, args.archs)
    say(table(result))
    write_json(args.json, result)
    return 0


def cmd_evaluate(args) -> int:
    from ..recovery.assess import assess, read_probe, read_text, table
    opts = EvaluateOptions(args.model, args.text, args.probe, args.source, args.eval_blocks, args.probe_limit)
    if args.plan:
        for path in opts.texts:
            read_text(path)                            # its errors: not UTF-8, empty
        if opts.probe:
            read_probe(opts.probe)
        return show_plan("evaluate", [f"{k} = {v!r}" for k, v in asdict(opts).items()] + [f"json = {args.json!r}"])
    result = assess(opts)
    say(table(result))
    write_json(args.json, result)
    return 0


COMMANDS = {"evaluate": cmd_evaluate, "from-scratch": cmd_from_scratch}
