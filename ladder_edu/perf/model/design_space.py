"""The design space of overlapping TP communication: one row per strategy, facts next to our own numbers.

Facts come from the papers (docs/references.md); measured numbers from ``bench`` on this machine; modeled numbers
from the
performance model (``perfmodel``) on hardware presets; quality of models trained from scratch from
``from_scratch``. Everything a row says that is not a citation is computed by the caller and passed in.
"""
from __future__ import annotations

from ...models.config import get_config
from ...models.registry import BASELINE, ISO, KRAKEN, VALID, VARIANTS
from .deployment import Deployment
from .perfmodel import forward_time, get_hardware, iso_prefill_time, predict
from ...util.noise import short

STRATEGIES = VALID

FACTS = {name: {"collectives": VARIANTS[name].collectives, "critical": VARIANTS[name].critical,
                "retrain": VARIANTS[name].retrain, "paper_quality": VARIANTS[name].quality} for name in STRATEGIES}
"""The papers' side of each row (``models.registry``)."""


def modeled(preset: str = "llama-3-70b", tp: int = 8, hardware: str = "h100-nvlink", batch: int = 1,
            prompt: int = 1024) -> dict[str, dict[str, float]]:
    """Model speedups over standard: end-to-end tokens/s (the Ladder benchmark) and prefill (time to first token)."""
    cfg, hw = get_config(preset), get_hardware(hardware)
    pred = predict(cfg, hw, tp, batch, prompt)
    std = pred[BASELINE].prefill_s
    out = {v: {"tokens_per_s": p.speedup_vs_standard, "prefill": std / p.prefill_s}
           for v, p in pred.items() if v in STRATEGIES}
    out[ISO] = {"tokens_per_s": None, "prefill": std / iso_prefill_time(Deployment(cfg, hw, tp, batch), prompt)}
    return out


def kraken_ttft_grid(hardware: str = "a100-nvswitch", presets=("llama-3-8b", "llama-3-70b"), tps=(4, 8),
                     prompts=(128, 2048)) -> dict[tuple, float]:
    """Modeled time-to-first-token speedup of Kraken over standard on the Kraken paper's grid (8x A100 NVSwitch,
    TP 4 and 8, prompts 128 and 2048; Llama shapes stand in for its GPT-3-like models)."""
    hw, out = get_hardware(hardware), {}
    for p in presets:
        cfg = get_config(p)
        for tp in tps:
            for n in prompts:
                dep = Deployment(cfg, hw, tp)
                out[p, tp, n] = forward_time(BASELINE, dep, n, n) / forward_time(KRAKEN, dep, n, n)
    return out


def rows(decode=None, prefill=None, scratch=None, model=None) -> list[dict]:
    """One dict per strategy. decode/prefill: ``bench.DecodeBenchmark`` results; scratch: ``from_scratch.compare``
    output; model: ``modeled()`` output."""
    out = []
    for s in STRATEGIES:
        r = {"strategy": s, **FACTS[s]}
        for key, bench in (("cpu_decode", decode), ("cpu_prefill", prefill)):
            if bench is not None and s in {x.variant for x in bench.rows}:
                r[key] = bench.row(s).speedup_vs_standard
                r[key + "_verdict"] = bench.row(s).verdict if s != BASELINE else None
        if scratch is not None and s in scratch["archs"]:
            r["scratch_ppl"] = scratch["archs"][s]["mean_ppl"]
            r["scratch_seeds"] = scratch["archs"][s]["ppl"]
        if model is not None and s in model:
            r["gpu_tokens_per_s"], r["gpu_prefill"] = model[s]["tokens_per_s"], model[s]["prefill"]
        out.append(r)
    return out


def markdown(table: list[dict], model_label: str = "70B TP=8 H100 NVLink") -> str:
    """The rows as a Markdown table (notebooks display it with IPython.display.Markdown)."""
    def x(v, fmt="{:.2f}x"):
        return "-" if v is None else fmt.format(v)

    def read(r, key):
        """A CPU speedup with the one noise rule's reading (``util.noise``): a number alone is not a claim."""
        verdict = r.get(key + "_verdict")
        return x(r.get(key)) + ("" if r.get(key) is None or verdict is None else f" ({short(verdict)})")

    def seeds(r):
        ppl = r.get("scratch_seeds")
        return x(r.get("scratch_ppl"), "{:.3f}") + (f" ({min(ppl):.2f}-{max(ppl):.2f})" if ppl and len(ppl) > 1 else "")
    head = ["strategy", "collectives", "on the critical path", "retraining", "quality (papers)",
            "our from-scratch ppl/byte (seeds' range)", "CPU decode (reading; n.d.: not distinguishable)",
            "CPU prefill (reading)", f"model: tokens/s ({model_label})",
            "model: prefill"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in table:
        cells = [r["strategy"], r["collectives"], r["critical"], r["retrain"], r["paper_quality"],
                 seeds(r), read(r, "cpu_decode"), read(r, "cpu_prefill"),
                 x(r.get("gpu_tokens_per_s")), x(r.get("gpu_prefill"))]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
