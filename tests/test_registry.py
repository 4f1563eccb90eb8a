"""The variant registry is what the package reads about a variant: its config, its critical path, its colour, the
command line's choices; and no variant name that is only a variant is typed as a literal outside it."""
import ast
from pathlib import Path

import pytest

from ladder_edu.cli.main import build_parser
from ladder_edu.models.config import ARCHS, get_config, variant_config
from ladder_edu.models.registry import (ALL_VARIANTS, BENCH_VARIANTS, CEILING, PREFILL_VARIANTS, VARIANTS,
                                        get_variant, require)
from ladder_edu.perf.model.critical_path import modules
from ladder_edu.teach.palette import MARKERS, VARIANTS as COLORS

ROOT = Path(__file__).resolve().parent.parent / "ladder_edu"
# Names that are variants and nothing else (the others are also block architectures, ModelConfig.arch)
ONLY_VARIANTS = sorted(set(VARIANTS) - set(ARCHS))
# The Ladder paper's measured table and the authors' logs name their columns: data, not code
DATA = {("perf/model/fit.py", "PAPER_70B"), ("perf/model/logs.py", "LOGS")}


def literals(path: Path):
    """(line, text) of every string constant in ``path`` that is not a docstring, with the top-level assignment
    it sits in (for the data allow-list)."""
    tree = ast.parse(path.read_text())
    docs = {id(n.body[0].value) for n in ast.walk(tree)
            if isinstance(n, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and n.body
            and isinstance(n.body[0], ast.Expr) and isinstance(n.body[0].value, ast.Constant)}
    for top in tree.body:
        target = top.targets[0].id if isinstance(top, ast.Assign) and isinstance(top.targets[0], ast.Name) else None
        for n in ast.walk(top):
            if isinstance(n, ast.Constant) and isinstance(n.value, str) and id(n) not in docs:
                yield n.lineno, n.value, target


def test_no_variant_name_is_typed_outside_the_registry():
    found = [f"{p.relative_to(ROOT)}:{line}: {text!r}" for p in sorted(ROOT.rglob("*.py")) if p.name != "registry.py"
             for line, text, target in literals(p)
             if text in ONLY_VARIANTS and (str(p.relative_to(ROOT)), target) not in DATA]
    assert ONLY_VARIANTS == ["iso", "upper_bound"]
    assert not found, "variant names typed outside models/registry.py (use its constants):\n" + "\n".join(found)


def test_the_check_finds_a_planted_literal(tmp_path):
    planted = tmp_path / "planted.py"
    planted.write_text('"""A docstring naming upper_bound is fine."""\nx = {"upper_bound": 1}\n')
    assert [t for _, t, _ in literals(planted) if t in ONLY_VARIANTS] == ["upper_bound"]


@pytest.mark.parametrize("name", PREFILL_VARIANTS)
def test_each_record_drives_config_and_critical_path(name):
    v = get_variant(name)
    cfg = variant_config(get_config("tiny"), name, 2)
    assert cfg.arch == v.arch and (cfg.comm == "all_reduce") == v.all_reduces
    mods = modules(name, 3, 1.0, 1.0, 0.5)
    assert all((m.comm > 0) == v.all_reduces for m in mods if m.comm or v.layout != "subsets")
    if v.layout in ("sequential", "fused"):          # every module waits with the variant's own lag
        assert {m.lag for m in mods} == {v.lag}
    assert COLORS[name] == v.color and MARKERS[name] == v.marker


def test_derived_lists():
    assert BENCH_VARIANTS == ("standard", "parallel", "ladder", "upper_bound")
    assert ALL_VARIANTS == BENCH_VARIANTS + ("kraken",) and PREFILL_VARIANTS == ALL_VARIANTS + ("iso",)
    assert not get_variant(CEILING).all_reduces


def test_the_command_line_offers_the_registry():
    sub = next(a for a in build_parser()._actions if a.dest == "command").choices
    for command in ("bench", "profile"):
        arch = next(a for a in sub[command]._actions if a.dest == "arch")
        assert arch.type.choices == PREFILL_VARIANTS


def test_one_error_for_a_variant_a_path_cannot_run():
    with pytest.raises(ValueError, match="unknown variant 'mamba'; valid choices: standard"):
        get_variant("mamba")
    with pytest.raises(ValueError, match=r"the emulated rank runs standard, .*; not kraken"):
        require(["ladder", "kraken"], BENCH_VARIANTS, "the emulated rank")
