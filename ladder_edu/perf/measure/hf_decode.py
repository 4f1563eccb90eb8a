"""Greedy decode of one checkpoint in this package's model and in transformers' ``LlamaForCausalLM``, interleaved.

The same weights (``pretrained.to_hf_llama``), the same prompt, the same number of threads, one device: each round
times ``new_tokens`` greedy tokens after a ``prompt_tokens`` prompt with this package's ``generate`` (its KV cache)
and with transformers' ``generate(do_sample=False)`` (its dynamic cache), alternating which goes first. Reported:
tokens per second (new tokens over the whole call, prefill included), median and range over rounds, and whether
the two produced the same tokens. ``ladder-edu compare-hf`` runs it on SmolLM2-135M-Instruct.
"""
from __future__ import annotations

import statistics

import torch

from ...util.noise import compare
from .timing import Timer, interleaved


def decode_vs_transformers(cfg, state, prompt_tokens: int = 32, new_tokens: int = 32, rounds: int = 5,
                           threads: int = 1, seed: int = 0) -> dict:
    """{"ours": {...}, "transformers": {...}, "same_tokens": bool, ...}: tokens/s median, min, max per code."""
    from ...models.generate import generate
    from ...models.model import Transformer
    from ...models.pretrained import to_hf_llama
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        ours = Transformer.from_full_state_dict(cfg, {k: v.clone() for k, v in state.items()}).eval()
        theirs = to_hf_llama(cfg, state)
        prompt = torch.randint(0, cfg.vocab_size, (1, prompt_tokens), generator=torch.Generator().manual_seed(seed))

        def run_ours():
            return generate(ours, prompt, new_tokens)[0]

        def run_theirs():
            out = theirs.generate(prompt, attention_mask=torch.ones_like(prompt), do_sample=False,
                                  max_new_tokens=new_tokens, min_new_tokens=new_tokens, pad_token_id=0)
            return out[0, prompt_tokens:]

        codes = {"ours": run_ours, "transformers": run_theirs}
        tokens = {}

        def measure(name: str) -> list[float]:
            with Timer(torch.device("cpu")) as timer:
                tokens[name] = codes[name]()
            return [new_tokens / timer.seconds]

        with torch.no_grad():
            rates = interleaved(codes, rounds, 1, measure)            # one warm-up round, dropped
    finally:
        torch.set_num_threads(before)
    out = {name: {"tokens_per_s": statistics.median(xs), "min": min(xs), "max": max(xs), "rounds": xs}
           for name, xs in rates.items()}
    out.update(same_tokens=bool(torch.equal(tokens["ours"], tokens["transformers"])), threads=threads,
               prompt_tokens=prompt_tokens, new_tokens=new_tokens, model=cfg.name)
    c = compare(rates["transformers"], rates["ours"], rounds, names=("ladder_edu", "transformers"),
                higher_is_faster=True)
    out.update(ratio=c.speedup, ratio_lo=c.lo, ratio_hi=c.hi, reading=c.sentence())
    return out


def table(res: dict) -> str:
    lines = [f"greedy decode of {res['model']}: {res['new_tokens']} new tokens after {res['prompt_tokens']}, "
             f"{res['threads']} thread(s), {len(res['ours']['rounds'])} interleaved rounds"]
    for name in ("ours", "transformers"):
        r = res[name]
        label = "ladder_edu" if name == "ours" else "transformers LlamaForCausalLM"
        lines.append(f"  {label:<30} {r['tokens_per_s']:7.2f} tokens/s (range {r['min']:.2f}-{r['max']:.2f})")
    lines.append(f"  {res['reading']}; same tokens: {res['same_tokens']}")
    return "\n".join(lines)
