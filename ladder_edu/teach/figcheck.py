"""Does a figure hide its data? Checks on a drawn matplotlib figure, from every artist's window extent.

After a draw of the figure every artist knows the box it occupies on the canvas (``get_window_extent``), in
pixels. A figure is readable when:

- no two text labels overlap (titles, axis and tick labels, annotations, legend entries, labels on bars);
- no text falls outside the figure (clipped when saved);
- a legend covers no data: no line's points, no bar, no scatter point lies under it;
- an axis that starts above zero under bars says so: a bar's length is its value only from zero, so a cut
  linear axis under bars must name the cut in its label or title ("axis from ...").

``problems(fig)`` lists every violation as one line; the tests draw every figure function in ``teach`` on
representative data and require an empty list.
"""
from __future__ import annotations

from matplotlib.axes import Axes
from matplotlib.collections import Collection
from matplotlib.container import BarContainer
from matplotlib.text import Text
from matplotlib.transforms import Bbox

TOLERANCE_PX = 1.0                   # boxes touching by a pixel are not an overlap
CUT_WORDS = ("axis from", "axis starts", "not from zero", "cut")


def _shrink(b: Bbox, px: float = TOLERANCE_PX) -> Bbox:
    return Bbox.from_extents(b.x0 + px, b.y0 + px, b.x1 - px, b.y1 - px)


def _visible(artist) -> bool:
    a = artist
    while a is not None:
        if not a.get_visible():
            return False
        a = getattr(a, "axes", None) if a is not getattr(a, "axes", None) else None
    return True


def _tick_labels(ax: Axes) -> list[Text]:
    out = []
    for axis, (lo, hi) in ((ax.xaxis, sorted(ax.get_xlim())), (ax.yaxis, sorted(ax.get_ylim()))):
        if not axis.get_visible():
            continue
        for tick in axis.get_major_ticks():
            if lo - 1e-9 * (abs(lo) + abs(hi)) <= tick.get_loc() <= hi + 1e-9 * (abs(lo) + abs(hi)):
                out += [t for t in (tick.label1, tick.label2) if t.get_visible()]
    return out


def texts(fig) -> list[Text]:
    """Every text drawn with content: figure and axes texts, titles, axis labels, tick labels in view, legends."""
    out = [t for t in fig.texts]
    for ax in fig.axes:
        out += list(ax.texts) + [ax.title, ax._left_title, ax._right_title]
        if ax.axison:
            out += [ax.xaxis.label, ax.yaxis.label] + _tick_labels(ax)
        leg = ax.get_legend()
        if leg is not None:
            out += list(leg.get_texts()) + [leg.get_title()]
    for leg in fig.legends:
        out += list(leg.get_texts()) + [leg.get_title()]
    return [t for t in out if t.get_visible() and t.get_text().strip() and _visible(t)]


def _data_boxes(ax: Axes, renderer) -> list[tuple[str, Bbox]]:
    """Small boxes around each data point and each bar of ``ax``, in pixels."""
    out = []
    for line in ax.lines:
        xy = line.get_xydata()
        if not line.get_visible() or len(xy) == 0:
            continue
        for x, y in line.get_transform().transform(xy):
            out.append((f"line {line.get_label()!r}", Bbox.from_extents(x - 2, y - 2, x + 2, y + 2)))
    for c in ax.containers:
        if isinstance(c, BarContainer):
            for p in c.patches:
                b = p.get_window_extent(renderer)
                if b.width > 0 and b.height > 0:
                    out.append((f"bar {c.get_label()!r}", b))
    for p in ax.patches:
        if p.get_visible() and p.get_label() != "_nolegend_" and p not in _bar_patches(ax):
            b = p.get_window_extent(renderer)
            if b.width > 0 and b.height > 0:
                out.append((f"shape {p.get_label()!r}", b))
    for coll in ax.collections:
        if not isinstance(coll, Collection) or not coll.get_visible():
            continue
        offsets = coll.get_offsets()
        if len(offsets) and not (len(offsets) == 1 and not offsets[0].any()):
            for x, y in coll.get_offset_transform().transform(offsets):
                out.append((f"points {coll.get_label()!r}", Bbox.from_extents(x - 2, y - 2, x + 2, y + 2)))
        else:
            for path in coll.get_paths():
                b = path.transformed(coll.get_transform()).get_extents()
                if b.width > 0 and b.height > 0:
                    out.append((f"shape {coll.get_label()!r}", b))
    return out


def _bar_patches(ax: Axes) -> set:
    return {p for c in ax.containers if isinstance(c, BarContainer) for p in c.patches}


def _extent(t: Text, renderer) -> Bbox:
    """A text's box on the canvas: its frame (``bbox=...``) where it has one, else the glyphs."""
    frame = t.get_bbox_patch()
    return frame.get_window_extent(renderer) if frame is not None else t.get_window_extent(renderer)


def _bars_cut(ax: Axes) -> str | None:
    """A bar chart whose value axis does not start at zero, without saying so."""
    words = " ".join(t.get_text().lower() for t in [ax.title, ax.xaxis.label, ax.yaxis.label] + list(ax.texts))
    if any(w in words for w in CUT_WORDS):
        return None
    for c in ax.containers:
        if not isinstance(c, BarContainer) or not c.patches:
            continue
        vertical = c.orientation == "vertical"
        scale = ax.get_yscale() if vertical else ax.get_xscale()
        lo = min(ax.get_ylim() if vertical else ax.get_xlim())
        base = min(p.get_y() if vertical else p.get_x() for p in c.patches)
        if scale == "linear" and base <= 0 < lo:
            return f"bars start at 0 but the axis starts at {lo:g}"
        if scale == "log" and base <= 0:
            return "bars on a log axis (their length means nothing)"
    return None


def problems(fig) -> list[str]:
    """Every way ``fig`` hides its data, one line each (empty: readable)."""
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    found = []
    boxes = [(t, _extent(t, renderer)) for t in texts(fig)]
    page = fig.bbox
    for t, b in boxes:
        if b.x0 < page.x0 - TOLERANCE_PX or b.y0 < page.y0 - TOLERANCE_PX or b.x1 > page.x1 + TOLERANCE_PX \
                or b.y1 > page.y1 + TOLERANCE_PX:
            found.append(f"text {t.get_text()!r} falls outside the figure")
    for i, (t, b) in enumerate(boxes):
        for u, c in boxes[i + 1:]:
            if _shrink(b).overlaps(_shrink(c)):
                found.append(f"texts {t.get_text()!r} and {u.get_text()!r} overlap")
    legends = [(ax, ax.get_legend()) for ax in fig.axes if ax.get_legend() is not None]
    for ax, leg in legends:
        lb = _shrink(leg.get_window_extent(renderer))
        for what, b in _data_boxes(ax, renderer):
            if lb.overlaps(b):
                found.append(f"the legend of {ax.get_title()!r} covers {what}")
                break
    for ax in fig.axes:
        cut = _bars_cut(ax)
        if cut:
            found.append(f"axes {ax.get_title()!r}: {cut}")
    return found
