"""The package's own layout: which module imports which, read from the source (``ast``), and its picture.

``module_imports()`` maps every module of ladder_edu to the ladder_edu modules it imports (at the top or inside a
function); ``subpackage_imports()`` folds that into edges between subpackages with a count; ``draw_layout()`` draws
the subpackages bottom-up with an arrow for each edge. The README's picture is ``draw_layout()``, saved by
``python -m ladder_edu.teach.layout docs/img/layout.png``; tests/test_layout.py checks that every edge points down.
"""
from __future__ import annotations

import ast
import pathlib
import sys
from collections import Counter

ROOT = pathlib.Path(__file__).resolve().parents[1]
# The layers, bottom to top, written once: a layer may import itself and the ones below it, never one above.
# perf holds two: the performance model (perf.model) and the measurements (perf.measure), which may use the model.
SUBPACKAGES = ("util", "tp", "models", "profiling", "perf.model", "perf.measure", "recovery", "teach", "labs", "cli")
ROLES = {"util": "atomic file writes",
         "tp": "process groups, launcher and its options, async all-reduce, column/row-parallel linears",
         "models": "config, run spec, layers, the decoder's due rule, Kraken, ISO, generation, compiled decode, "
                   "checkpoints",
         "profiling": "torch.profiler traces, merging, overlap analysis (compute, communication, room), the probe",
         "perf.model": "the performance model: hardware, NCCL's cost, kernels, critical path, fit, design space",
         "perf.measure": "benchmarks, the emulated rank, this machine's and a GPU's measured presets",
         "recovery": "fine-tune, distillation, evaluation, the conversion experiment, from scratch",
         "teach": "one palette; diagrams, timelines, plots, widgets and lessons the notebooks show",
         "labs": "classroom exercises: checks that run the student's code on real ranks",
         "cli": "ladder-edu: one module per command group"}


def module_name(path: pathlib.Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _targets(path: pathlib.Path) -> set[str]:
    me = module_name(path)
    package = me if path.name == "__init__.py" else me.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[:len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            found.add(target)
            found.update(f"{target}.{a.name}" for a in node.names)        # from .pkg import module
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
    return found


def module_imports(root: pathlib.Path = ROOT) -> dict[str, set[str]]:
    """{module: the ladder_edu modules it imports}, for every .py file under ``root``."""
    files = sorted(root.rglob("*.py"))
    modules = {module_name(p) for p in files}
    return {module_name(p): {t for t in _targets(p) if t in modules and t != module_name(p)} for p in files}


def subpackage(module: str) -> str | None:
    """The layer a module belongs to (None for the top-level ladder_edu, __main__, and perf's own __init__)."""
    parts = module.split(".")
    if len(parts) > 2 and ".".join(parts[1:3]) in SUBPACKAGES:
        return ".".join(parts[1:3])
    return parts[1] if len(parts) > 1 and parts[1] in SUBPACKAGES else None


def subpackage_imports(graph: dict[str, set[str]] | None = None) -> Counter:
    """Counter{(from subpackage, to subpackage): number of module-to-module imports}, self-imports left out."""
    edges = Counter()
    for m, targets in (graph or module_imports()).items():
        for t in targets:
            a, b = subpackage(m), subpackage(t)
            if a and b and a != b:
                edges[a, b] += 1
    return edges


def draw_layout(edges: Counter | None = None):
    """The subpackages bottom-up, what each holds, an arrow per import edge (width ~ how many imports)."""
    import matplotlib.pyplot as plt
    edges = edges if edges is not None else subpackage_imports()
    fig, ax = plt.subplots(figsize=(9, 7.4))
    y = {p: i for i, p in enumerate(SUBPACKAGES)}
    for p, i in y.items():
        ax.add_patch(plt.Rectangle((0, i - 0.3), 2.2, 0.6, color="#4C72B0", alpha=0.9))
        ax.text(1.1, i, p + "/", ha="center", va="center", color="white", fontsize=12, weight="bold")
        ax.text(4.6, i, ROLES[p], va="center", fontsize=8.5, wrap=True)
    for k, ((a, b), n) in enumerate(sorted(edges.items(), key=lambda e: (y[e[0][0]] - y[e[0][1]], e[0]))):
        x = 2.3 + 0.11 * (k % 20)
        colour = "#55A868" if y[b] < y[a] else "#C44E52"          # red would be an upward import
        ax.annotate("", xy=(x, y[b] + 0.3), xytext=(x, y[a] - 0.3),
                    arrowprops=dict(arrowstyle="->", color=colour, lw=0.6 + 0.25 * min(n, 8)))
    ax.set_xlim(-0.2, 11.5)
    ax.set_ylim(-0.6, len(SUBPACKAGES) - 0.4)
    ax.axis("off")
    ax.set_title("ladder_edu: subpackages (bottom to top) and their imports (each arrow points down)")
    fig.tight_layout()
    return fig


if __name__ == "__main__":
    import matplotlib
    matplotlib.use("Agg")
    out = sys.argv[1] if len(sys.argv) > 1 else "layout.png"
    draw_layout().savefig(out, dpi=110)
    print(f"wrote {out}")
