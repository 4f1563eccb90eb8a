"""A notebook's markdown states no number that its own stored outputs do not print or docs/references.md does not
hold (tests/claims.py says what counts as a number)."""
import json

import pytest

from tests.claims import ROOT, numbers, unbacked

COURSE = sorted((ROOT / "notebooks").glob("*.ipynb"))


def test_what_counts_as_a_claim():
    text = ("Llama-3.1-8B on an H100: ladder 1.31x, 38% of the time, 64x the bytes, 0.8 ms; `t_comm=0.8` and "
            "\\(r_i = 0.5\\) and arXiv 2501.06589 are not claims")
    assert numbers(text) == ["1.31x", "38%", "64x", "0.8"]


@pytest.mark.parametrize("path", COURSE, ids=lambda p: p.stem)
def test_markdown_numbers_are_printed_or_referenced(path):
    missing = unbacked(path)
    assert not missing, (f"{path.name}: markdown states numbers no stored output prints and docs/references.md does "
                         f"not hold (cell, number): {missing}; print them from the measurement instead")


def test_a_planted_number_fails(tmp_path):
    nb = json.loads(COURSE[0].read_text())
    nb["cells"].insert(1, {"cell_type": "markdown", "metadata": {}, "source": ["ladder is 1.37x faster here"]})
    planted = tmp_path / "planted.ipynb"
    planted.write_text(json.dumps(nb))
    assert unbacked(planted) == [(1, "1.37x")]
