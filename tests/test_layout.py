"""The package's layout: subpackages import only downward, modules form no import circle, files stay small."""
import pytest

from ladder_edu.teach.layout import ROOT, module_imports, module_name

# The allowed order, written once: a subpackage may import itself and the ones before it, never one after it.
ORDER = ("tp", "models", "profiling", "perf", "recovery", "teach", "labs", "cli")


FILES = sorted(ROOT.rglob("*.py"))


def imports(path):
    """The ladder_edu modules ``path`` imports (read afresh, so a file planted by a test is seen)."""
    return module_imports()[module_name(path)]


def layer(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in ORDER else None


def test_every_subpackage_is_in_the_order():
    assert {p.name for p in ROOT.iterdir() if (p / "__init__.py").exists()} == set(ORDER)


@pytest.mark.parametrize("path", FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_subpackages_import_only_downward(path):
    mine = layer(module_name(path))
    if mine is None:                                 # ladder_edu/__init__.py, __main__.py: the top
        return
    for target in imports(path):
        theirs = layer(target)
        assert theirs is not None, f"{path.name} imports the top-level {target}"
        assert ORDER.index(theirs) <= ORDER.index(mine), (
            f"{module_name(path)} ({mine}) imports {target} ({theirs}), which is above it in {ORDER}")


def test_no_import_circles():
    graph = module_imports()
    done, stack = set(), []

    def visit(m):
        if m in stack:
            cycle = stack[stack.index(m):] + [m]
            pytest.fail("import circle: " + " -> ".join(cycle))
        if m in done:
            return
        stack.append(m)
        for t in graph.get(m, ()):
            if not t.endswith("__init__") and t in graph and not (m.startswith(t + ".") or t == "ladder_edu"):
                visit(t)
        stack.pop()
        done.add(m)
    for m in graph:
        visit(m)


def test_the_checker_sees_a_planted_upward_import():
    bad = ROOT / "tp" / "_planted_for_test.py"
    assert not bad.exists()
    bad.write_text("from ..perf.bench import decode_benchmark\n")
    try:
        with pytest.raises(AssertionError, match="above it"):
            test_subpackages_import_only_downward(bad)
    finally:
        bad.unlink()


@pytest.mark.parametrize("path", FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_files_stay_picotron_sized(path):
    assert len(path.read_text().splitlines()) <= 310, f"{path} is over ~300 lines: split it by concept"


def test_the_circle_check_sees_a_planted_circle():
    a, b = ROOT / "models" / "_planted_a.py", ROOT / "models" / "_planted_b.py"
    a.write_text("from . import _planted_b\n")
    b.write_text("def f():\n    from ._planted_a import x\n")
    try:
        with pytest.raises(pytest.fail.Exception, match="import circle"):
            test_no_import_circles()
    finally:
        a.unlink()
        b.unlink()


def test_the_layout_picture_has_only_downward_edges():
    from ladder_edu.teach.layout import subpackage_imports
    edges = subpackage_imports()
    assert ("models", "tp") in edges and ("cli", "perf") in edges
    assert all(ORDER.index(b) < ORDER.index(a) for a, b in edges)
