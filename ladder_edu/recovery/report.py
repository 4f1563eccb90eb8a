"""What a conversion run measured, as a table and as one-line comparisons: ``ladder-edu convert`` prints the table,
notebook 05 prints both beside its prose (``convert.run_conversion``'s result: ``rows`` per measured model)."""
from __future__ import annotations

from .options import MEASURED, TRAINED


def labels(result: dict) -> dict[str, str]:
    """What the table calls each row of a run."""
    return {**{n: label.format(k=result["k"]) for n, label in MEASURED.items()},
            **{n: stage.label for n, stage in TRAINED.items()}}


def table(result: dict) -> str:
    """One line per measured model: perplexities, generation score, probe."""
    names = labels(result)
    ood = result.get("texts", {}).get("ood", "out-of-domain").split()[-1]
    lines = [f"{'model':<32} {'pydoc ppl':>9} {ood + ' ppl':>11} {'gen KL':>7} {'probe':>7}"]
    for key, r in result.get("rows", {}).items():
        lines.append(f"{names.get(key, key):<32} {r['ppl']:9.2f} {r['ood_ppl']:11.2f} {r['gen_kl']:7.3f} "
                     f"{r['probe_correct']:>3d}/{r['probe_total']:<3d}")
    if "chosen" in result:
        lines.append(f"chosen layers: {','.join(map(str, result['chosen']))}")
    return "\n".join(lines)


def reading(result: dict, a: str, b: str) -> str:
    """One line comparing two rows of the table (``a`` against ``b``), for a notebook to print beside its prose."""
    names = labels(result)
    ra, rb = result["rows"][a], result["rows"][b]
    return (f"{names.get(a, a)} against {names.get(b, b)}: pydoc perplexity {ra['ppl']:.2f} against {rb['ppl']:.2f}, "
            f"out of domain {ra['ood_ppl']:.2f} against {rb['ood_ppl']:.2f} ({100 * (ra['ood_ppl'] / rb['ood_ppl'] - 1):+.0f}%), "
            f"gen KL {ra['gen_kl']:.3f} against {rb['gen_kl']:.3f}, probe {ra['probe_correct']} against "
            f"{rb['probe_correct']} of {ra['probe_total']}")
