"""ipywidgets front-ends for the notebooks (the drawing itself lives in ``timeline.py``)."""
from __future__ import annotations

import ipywidgets as W
import matplotlib.pyplot as plt
from IPython.display import display

from .overlap import classify, load_trace
from .timeline import draw_timeline


def timeline_explorer(traces: dict[str, list[str]]):
    """Pick the ranks, the profiled step and the window of layers to draw; returns the widget box.

    ``box.redraw()`` draws with the current choices (the controls call it on every change)."""
    n_ranks = len(next(iter(traces.values())))
    first = classify(load_trace(next(iter(traces.values()))[0]))
    n_layers = 1 + max(i.layer for i in first["compute"] if i.layer is not None)
    n_steps = sum(1 for i in first["compute"] if i.layer == 0 and i.name.endswith(("attn", "attn+mlp")))
    rank = W.Dropdown(options=[("all ranks", -1)] + [(f"rank {r}", r) for r in range(n_ranks)], value=-1,
                      description="ranks")
    step = W.Dropdown(options=[(f"step {s}", s) for s in range(n_steps)], value=n_steps - 1, description="step")
    layers = W.IntRangeSlider(value=(0, n_layers - 1), min=0, max=n_layers - 1, description="layers")
    out = W.Output()

    def redraw(*_):
        with out:
            out.clear_output(wait=True)
            full = layers.value == (0, n_layers - 1)
            fig = draw_timeline(traces, step=step.value, layers=None if full else layers.value,
                                ranks=None if rank.value < 0 else [rank.value])
            display(fig)
            plt.close(fig)

    for w in (rank, step, layers):
        w.observe(redraw, names="value")
    box = W.VBox([W.HBox([rank, step, layers]), out])
    box.redraw = redraw
    return box
