"""ipywidgets front-ends for the notebooks (the drawing itself lives in ``timeline.py``)."""
from __future__ import annotations

import ipywidgets as W
import matplotlib.pyplot as plt
from IPython.display import display

from ..profiling.overlap import classify, load_trace
from .timeline import draw_timeline


class Explorer(W.VBox):
    """A box of controls and a figure that also carries a PNG of its latest drawing in its display data, so a
    static view of the notebook (the course website, GitHub) shows the picture where the live widget cannot run."""

    png: bytes | None = None

    def show(self, fig) -> None:
        """Display ``fig`` in the box's output area and keep its PNG for the static views."""
        import io
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=80, bbox_inches="tight")
        self.png = buf.getvalue()
        display(fig)
        plt.close(fig)

    def _repr_mimebundle_(self, **kwargs):
        import base64
        bundle = super()._repr_mimebundle_(**kwargs)
        if self.png is not None:
            data = bundle[0] if isinstance(bundle, tuple) else bundle
            data["image/png"] = base64.b64encode(self.png).decode()
        return bundle


def timeline_explorer(traces: dict[str, list[str]]):
    """Pick the ranks, the profiled step and the window of layers to draw; returns the widget box.

    the box's ``redraw()`` draws with the current choices (the controls call it on every change)."""
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
            box.show(draw_timeline(traces, step=step.value, layers=None if full else layers.value,
                                   ranks=None if rank.value < 0 else [rank.value]))

    for w in (rank, step, layers):
        w.observe(redraw, names="value")
    box = Explorer([W.HBox([rank, step, layers]), out])
    box.redraw = redraw
    return box


def perf_explorer(hardware: str = "h100-nvlink", model: str = "llama-3-70b"):
    """Sliders over the performance model: TP degree, link bandwidth, an all-reduce's wait per rank (``skew_us``,
    time on the communication lane, which overlap can hide), batch, model.
    Returns the widget box; its ``redraw()`` draws with the current values."""
    from ..models.config import PRESETS
    from ..perf.model.perfmodel import HARDWARE
    from .perfplots import plot_prediction
    base = HARDWARE[hardware]
    big = [n for n in PRESETS if PRESETS[n].n_layers >= 30 and n != "smollm2-135m"]
    model_w = W.Dropdown(options=big, value=model, description="model")
    tp_w = W.Dropdown(options=[2, 4, 8], value=8, description="TP")
    batch_w = W.SelectionSlider(options=[1, 2, 4, 8, 16, 32, 64], value=1, description="batch")
    bw_w = W.FloatLogSlider(value=base.link_gbps, base=10, min=0.5, max=3, description="link GB/s")
    lat_w = W.FloatLogSlider(value=base.eff.skew_us, base=10, min=-1.5, max=1.5, description="AR us/rank")
    out = W.Output()

    def redraw(*_):
        with out:
            out.clear_output(wait=True)
            cfg = PRESETS[model_w.value]
            tp = tp_w.value if tp_w.value in cfg.valid_tp_degrees() else max(cfg.valid_tp_degrees())
            edited = (bw_w.value, lat_w.value) != (base.link_gbps, base.eff.skew_us)
            hw = base.with_(link_gbps=bw_w.value, skew_us=lat_w.value,
                            name=f"{hardware} (edited)" if edited else hardware)
            box.show(plot_prediction(cfg, hw, tp, batch_w.value))

    for w in (model_w, tp_w, batch_w, bw_w, lat_w):
        w.observe(redraw, names="value")
    box = Explorer([W.HBox([model_w, tp_w, batch_w]), W.HBox([bw_w, lat_w]), out])
    box.redraw = redraw
    return box
