"""Kraken and ISO schedules, the from-scratch comparison's plumbing and the design-space table."""
import math

import pytest

from ladder_edu.perf.model.design_space import STRATEGIES, markdown, modeled, rows
from ladder_edu.recovery.from_scratch import BASE, arch_config, compare
from ladder_edu.perf.model.critical_path import simulate, total_time


def test_kraken_and_iso_schedules_by_hand():
    # Kraken: each layer's all-reduce hides under the next attention when it is shorter; only the last is exposed.
    assert total_time(simulate("kraken", 4, 1.0, 2.0, 0.8)) == pytest.approx(4 * 3.0 + 0.8)
    # ... and when it is longer, each layer's MLP waits for it: (comm - attn) per layer but the first.
    assert total_time(simulate("kraken", 4, 1.0, 2.0, 1.5)) == pytest.approx(4 * 3.0 + 3 * 0.5 + 1.5)
    assert sum(e.lane == "comm" for e in simulate("kraken", 4, 1, 1, 1)) == 4
    # ISO: two half chunks; with no communication it is the standard schedule's compute.
    assert total_time(simulate("iso", 3, 1.0, 1.0, 0.0)) == pytest.approx(6.0)
    assert total_time(simulate("iso", 3, 1.0, 1.0, 0.8)) < total_time(simulate("standard", 3, 1.0, 1.0, 0.8))
    with pytest.raises(ValueError, match="valid choices"):
        simulate("bogus", 1, 1, 1, 1)


def test_from_scratch_trains_every_architecture_with_identical_recipes(tmp_path):
    res = compare(str(tmp_path), steps=4, seeds=(0, 1), progress=False, block=32, batch=4, eval_rows=4)
    assert list(res["archs"]) == ["standard", "parallel", "ladder", "kraken"]
    for arch, r in res["archs"].items():
        assert len(r["ppl"]) == 2 and all(math.isfinite(p) and 1 < p < 400 for p in r["ppl"])
    std, kra = res["archs"]["standard"]["params"], res["archs"]["kraken"]["params"]
    assert abs(kra / std - 1) < 0.15                       # same parameters per layer; a narrower embedding
    assert arch_config("kraken").kraken_degree == 2 and arch_config("ladder") == BASE.replace(arch="ladder")


def test_design_space_table_has_every_strategy():
    model = modeled()
    table = rows(model=model)
    assert [r["strategy"] for r in table] == list(STRATEGIES)
    assert model["iso"]["prefill"] > 1 and model["kraken"]["tokens_per_s"] > 1
    text = markdown(table)
    assert text.count("\n") == len(STRATEGIES) + 1 and "| kraken | 1 per layer (the last one before the head)" in text


def test_kraken_ttft_grid_and_from_scratch_command(tmp_path, capsys):
    from ladder_edu.cli import main
    from ladder_edu.perf.model.design_space import kraken_ttft_grid
    grid = kraken_ttft_grid()
    assert len(grid) == 8 and all(1 < s < 2 for s in grid.values())
    assert main(["from-scratch", "--steps", "2", "--seeds", "0", "--archs", "standard,kraken",
                 "--out", str(tmp_path)]) == 0
    assert "kraken" in capsys.readouterr().out and (tmp_path / "from_scratch.json").exists()
