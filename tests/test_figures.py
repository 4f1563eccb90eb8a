"""Every figure function in ``teach`` drawn on representative data hides none of it (``teach/figcheck.py``):
no overlapping text, no text outside the figure, no legend over data, no unexplained cut of a bar chart's axis."""
import inspect
import math
import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402

from ladder_edu import get_config  # noqa: E402
from ladder_edu.models.registry import BENCH_VARIANTS  # noqa: E402
from ladder_edu.perf.measure.bench import summarize  # noqa: E402
from ladder_edu.perf.model.hardware import HARDWARE  # noqa: E402
from ladder_edu.teach import costs, derivations, diagrams, layout, perfplots, recoveryplots, timeline  # noqa: E402
from ladder_edu.teach.figcheck import problems  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODULES = (costs, derivations, diagrams, layout, perfplots, recoveryplots, timeline)


def bench(variants=BENCH_VARIANTS, base=14.0, rounds=4, steps=3):
    """A decode table as a 2-core run gives it: standard ~14 ms, the others scaled, a little drift per round."""
    scale = {"standard": 1.0, "parallel": 0.8, "ladder": 0.95, "upper_bound": 0.55, "kraken": 0.78, "iso": 1.02}
    times = {v: [base * scale.get(v, 1.0) * (1 + 0.03 * r + 0.01 * ((s * 7 + r) % 3)) / 1e3
                 for r in range(rounds) for s in range(steps)] for v in variants}
    return summarize(get_config("small"), 2, "gloo", 1, 64, times, "realtime", rounds=rounds)


def recovery_result():
    scores = {str(j): 0.01 + 0.3 * math.exp(-j / 2) + 0.02 * (j % 5) for j in range(30)}
    rows = lambda p: {"top": {"probe_correct": p[0]}, "chosen": {"probe_correct": p[1]},
                      "chosen+distill": {"probe_correct": p[2]}}
    points = [{"k": k, "predicted": {"llama-3-8b TP8 b1": 1 + 0.012 * k}, "rows": rows(p),
               "converted": {"probe_correct": p[0]}, "recovered": {"probe_correct": p[2]}}
              for k, p in ((4, (42, 43, 48)), (8, (35, 37, 45)), (12, (20, 25, 41)), (15, (3, 14, 38)),
                           (20, (0, 0, 30)))]
    return {"original": {"probe_correct": 50}, "points": points, "k": 15,
            "choice": {"scores": scores, "order": list(range(4, 19))}, "chosen": list(range(4, 19))}


def histories():
    h = lambda a: {"train": [{"step": s, "loss": a / (1 + s)} for s in range(1, 101)],
                   "eval": [{"step": s, "loss": a / (2 + s / 10)} for s in (0, 25, 50, 75, 100)]}
    return {"chosen+distill": h(1.0), "repaired+distill": h(1.3), "chosen+match": h(0.7)}


@pytest.fixture(scope="module")
def traces(tmp_path_factory):
    from ladder_edu.profiling.trace import profile
    return profile(get_config("tiny"), ["standard", "ladder"], 2, "decode", str(tmp_path_factory.mktemp("tr")),
                   steps=1, warmup=1, context=8)


def figures(traces):
    """{function name: a zero-argument call drawing it on representative data}."""
    from ladder_edu.perf.measure.gpu_preset import compiled_step_comparison, load_measurements
    from ladder_edu.perf.model.alternatives import envelope
    from ladder_edu.perf.model.explain import breakdown, sweep
    from ladder_edu.perf.model.fit import cross_validate, validate
    sizes = [2 ** k for k in range(10, 26, 2)]
    sweep_t = {s: 150e-6 + s / 2.9e9 for s in sizes}
    gpu = load_measurements(os.path.join(ROOT, "docs", "gpu", "h100"))
    h100 = HARDWARE["h100-nvlink"]
    result = recovery_result()
    return {
        "plot_allreduce": lambda: costs.plot_allreduce(sweep_t, (144e-6, 2.88e9), {s: 10e-6 + s / 300e9 for s in sizes},
                                                       costs.decode_message_bytes(get_config("llama-3-70b"))),
        "plot_prefill_decode": lambda: costs.plot_prefill_decode(
            {"context": 64, "prefill_s": 0.038, "decode_s": 0.012, "weight_bytes": 4 * 30e6,
             "kv_cache_bytes": 2e6, "prefill_flops": 2 * 30e6 * 64, "decode_flops": 2 * 30e6}),
        "plot_noise": lambda: costs.plot_noise([bench(("standard", "ladder"), 14 + i) for i in range(3)]),
        "plot_sequence_parallel": lambda: costs.plot_sequence_parallel(
            {"bytes": 2 ** 21, "all_reduce_s": 2.5e-3, "reduce_scatter_s": 2.2e-3, "all_gather_s": 1.0e-3}),
        "draw_sharding": lambda: diagrams.draw_sharding(2),
        "draw_dataflow": diagrams.draw_dataflow,
        "draw_schedule": lambda: diagrams.draw_schedule(("standard", "parallel", "ladder", "upper_bound", "kraken",
                                                                   "iso"), 3),
        "plot_decode": lambda: diagrams.plot_decode(bench()),
        "plot_bench": lambda: diagrams.plot_bench([bench(), bench(base=20.0)]),
        "plot_compiled_overlap": lambda: diagrams.plot_compiled_overlap(
            {"standard": [0] * 16, "ladder": [3, 2] * 8, "ladder, no fence": [0, 1, 3, 0] * 4}),
        "draw_layout": layout.draw_layout,
        "plot_validation": lambda: perfplots.plot_validation(validate(), cross_validate(iters=5)),
        "plot_breakdown": lambda: perfplots.plot_breakdown(breakdown(get_config("llama-3-70b"), h100, 8, 1), "70B"),
        "plot_sweep": lambda: perfplots.plot_sweep(sweep(batch=1), 1),
        "plot_prediction": lambda: perfplots.plot_prediction(get_config("llama-3-70b"), h100, 8, 1),
        "plot_model_vs_measured": lambda: perfplots.plot_model_vs_measured(bench(), get_config("small"),
                                                                           HARDWARE["h100-nvlink"]),
        "plot_gpu_measurements": lambda: perfplots.plot_gpu_measurements(
            gpu["projections"]["rows"], compiled_step_comparison(gpu["steps"]["rows"], h100), h100),
        "plot_ladder_sweep": lambda: recoveryplots.plot_ladder_sweep([0, 4, 8, 12, 15, 20],
                                                                     [17.0, 18.5, 21.0, 30.0, 47.0, 120.0], 30,
                                                                     [1.0, 1.045, 1.107, 1.162, 1.207, 1.291]),
        "plot_from_scratch": lambda: recoveryplots.plot_from_scratch(
            {"archs": {a: {"mean_ppl": m, "ppl": [m - 0.2, m + 0.2]} for a, m in
                       (("standard", 4.49), ("parallel", 4.55), ("ladder", 4.69), ("kraken", 4.6))}}),
        "plot_frontier": lambda: recoveryplots.plot_frontier(result),
        "plot_layer_costs": lambda: recoveryplots.plot_layer_costs(result),
        "plot_chosen_frontier": lambda: recoveryplots.plot_chosen_frontier(result),
        "plot_repair": lambda: recoveryplots.plot_repair(
            [{"layer": j, "module": m, "before": 0.2 + 0.01 * j, "after": 0.08} for j in range(4, 19)
             for m in ("attn", "mlp")]),
        "plot_distill_runs": lambda: recoveryplots.plot_distill_runs(histories()),
        "draw_timeline": lambda: timeline.draw_timeline(traces),
        "plot_roofline": lambda: derivations.plot_roofline(
            {"context": 64, "prefill_s": 0.031, "decode_s": 0.009, "weight_bytes": 4 * 7e6, "kv_cache_bytes": 2e6,
             "prefill_flops": 2 * 7e6 * 64, "decode_flops": 2 * 7e6}, {"bandwidth": 6e9, "flops": 60e9}),
        "plot_ring": lambda: derivations.plot_ring(sweep_t, (150e-6, 2.9e9), 2,
                                                   nccl={s: 10e-6 + s / 300e9 for s in sizes}),
        "plot_envelope": lambda: derivations.plot_envelope(
            envelope(get_config("llama-3-70b"), h100, 8, 12, 2.5, 22), {"standard": 13.6, "ladder": 10.4}),
        "plot_alternatives": lambda: derivations.plot_alternatives(
            [2, 6, 11, 22, 40], {"ladder": [1.03, 1.09, 1.17, 1.33, 1.6], "parallel": [1.03, 1.06, 1.1, 1.16, 1.25]},
            {"NCCL (model)": 24.3, "NCCL through torch": 22.0, "one-shot": 10.8}),
    }


def figure_functions():
    return sorted(n for m in MODULES for n, f in vars(m).items()
                  if inspect.isfunction(f) and f.__module__ == m.__name__ and n.startswith(("plot_", "draw_")))


def test_every_figure_function_has_representative_data(traces):
    assert set(figure_functions()) == set(figures(traces))


@pytest.mark.parametrize("name", figure_functions())
def test_figure_hides_no_data(name, traces):
    fig = figures(traces)[name]()
    try:
        assert problems(fig) == []
    finally:
        plt.close(fig)


def test_the_checker_finds_each_planted_problem():
    fig, (a, b) = plt.subplots(1, 2, figsize=(6, 3))
    a.plot([0, 1, 2], [0, 1, 2], "o-", label="data")
    a.legend(loc="center")                                          # over the middle point
    a.text(0.1, 0.9, "one label", transform=a.transAxes)
    a.text(0.12, 0.9, "two labels", transform=a.transAxes)          # over the first
    b.bar([0, 1], [10, 11])
    b.set_ylim(9, 12)                                               # bars cut, unsaid
    fig.text(0.98, 0.5, "off the page")                             # runs past the right edge
    found = "\n".join(problems(fig))
    plt.close(fig)
    for what in ("covers line", "overlap", "axis starts at 9", "outside the figure"):
        assert what in found, (what, found)
