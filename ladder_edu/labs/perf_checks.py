"""Lab 3: predict a speedup with the performance model, then measure one and explain the difference."""
from __future__ import annotations


from ..models.config import get_config
from ..models.registry import BASELINE, CEILING
from ..perf.model.hardware import get_hardware
from ..perf.model.perfmodel import predict
from .runner import Verdict, call, failed, load_student

SETTINGS = (("llama-3-70b", "h100-nvlink", 8, 1), ("llama-3-70b", "h100-no-p2p", 8, 1),
            ("llama-3-8b", "h100-nvlink", 4, 16), ("llama-3-70b", "h100-nvlink", 8, 64))


def reference_speedup(model: str, gpu: str, tp: int, batch: int) -> float:
    return predict(get_config(model), get_hardware(gpu), tp, batch)["ladder"].speedup_vs_standard


def check_predicted_speedup(fn) -> Verdict:
    """``fn(model, gpu, tp, batch)`` -> ladder's predicted tokens/s speedup over standard (``perf.model.perfmodel.predict``)."""
    fn2, bad = load_student(fn, allow_package=True)          # the exercise calls the package's model
    if bad:
        return bad
    for model, gpu, tp, batch in SETTINGS:
        got, problem = call(fn2, model, gpu, tp, batch)
        if problem:
            return failed(problem)
        want = reference_speedup(model, gpu, tp, batch)
        if not isinstance(got, (int, float)) or abs(got - want) > 1e-6:
            p = predict(get_config(model), get_hardware(gpu), tp, batch)
            hint = "the performance model predicts each variant's tokens/s; a speedup compares two of them"
            if isinstance(got, (int, float)) and abs(got - p["ladder"].tokens_per_s) < 1e-6:
                hint = "that is ladder's tokens/s; the speedup is relative to the standard model"
            elif isinstance(got, (int, float)) and abs(got - reference_speedup(model, gpu, tp, 1)) < 1e-6:
                hint = "pass the batch size to predict too"
            return Verdict(False, f"{model} on {gpu}, TP={tp}, batch {batch}: you said {got!r}, the model says "
                           f"{want:.4f}", hint)
    return Verdict(True, f"checked {len(SETTINGS)} settings")


def explain_gap(predicted: float, bench) -> str:
    """The measured ladder speedup on this machine next to a prediction, with the usual reasons they differ."""
    rows = {r.variant: r.median_ms for r in bench.rows}
    share = 1 - rows.get(CEILING, rows[BASELINE]) / rows[BASELINE]
    lines = [f"predicted ladder speedup {predicted:.2f}x; measured here: {bench.comparison('ladder').sentence()}",
             f"communication share of a standard step here: {100 * share:.0f}%"]
    if bench.backend == "gloo":
        lines.append("on a CPU gloo's all-reduces run on threads that need the cores the compute uses, so an "
                     "all-reduce hides only where a core is free (ladder-edu overlap-probe measures it); a GPU's "
                     "NCCL kernels use a few SMs of 132 and links of their own")
    return "\n".join(lines)
