"""The package's layout: subpackages import only downward, modules form no import circle, files stay small."""
import pytest

from ladder_edu.teach.layout import ROOT, SUBPACKAGES as ORDER, module_imports, module_name, subpackage


FILES = sorted(ROOT.rglob("*.py"))


def imports(path):
    """The ladder_edu modules ``path`` imports (read afresh, so a file planted by a test is seen)."""
    return module_imports()[module_name(path)]


layer = subpackage


def test_every_subpackage_is_in_the_order():
    found = {str(p.parent.relative_to(ROOT)).replace("/", ".") for p in ROOT.rglob("__init__.py") if p.parent != ROOT}
    assert found - {"perf"} == set(ORDER)


def test_the_model_never_imports_the_measurements():
    assert ORDER.index("perf.model") < ORDER.index("perf.measure")
    for m, targets in module_imports().items():
        if layer(m) == "perf.model":
            assert not [t for t in targets if layer(t) == "perf.measure"], m


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
    bad.write_text("from ..perf.measure.bench import decode_benchmark\n")
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
    assert ("models", "tp") in edges and ("cli", "perf.model") in edges and ("tp", "util") in edges
    assert all(ORDER.index(b) < ORDER.index(a) for a, b in edges)
