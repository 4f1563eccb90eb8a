"""Static checks on the stored notebooks: what nbval compares must be the same on every machine.

nbval (lax mode) compares the stored outputs of cells tagged ``nbval-check-output``, stderr included, so a
stored warning carrying a file path fails on any checkout at another path. The harness speaks through cell tags,
never through comments in the code a student reads. Every course notebook ends with its exercises.
"""

import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
COURSE = sorted((ROOT / "notebooks").glob("*.ipynb"))
LABS = sorted((ROOT / "notebooks" / "labs" / "source").glob("*/*.ipynb"))


def code_cells(path):
    return [c for c in json.loads(path.read_text())["cells"] if c["cell_type"] == "code"]


def checked(cell) -> bool:
    return "nbval-check-output" in cell.get("metadata", {}).get("tags", [])


@pytest.mark.parametrize("path", COURSE + LABS, ids=lambda p: p.stem)
def test_no_harness_text_in_code_a_student_reads(path):
    for n, cell in enumerate(code_cells(path), 1):
        text = "".join(cell["source"])
        assert "NBVAL" not in text and "# CI:" not in text, f"{path.name} code cell {n}: use a cell tag (nbval-*)"
    assert any(checked(c) for c in code_cells(path)), f"{path.name}: no cell's output is checked"


@pytest.mark.parametrize("path", COURSE + LABS, ids=lambda p: p.stem)
def test_checked_cells_store_no_stderr(path):
    for n, cell in enumerate(code_cells(path), 1):
        if not checked(cell):
            continue
        streams = [o for o in cell.get("outputs", []) if o.get("name") == "stderr"]
        assert not streams, f"{path.name} code cell {n} is checked by nbval and stores stderr: {streams[0]['text']!r}"


@pytest.mark.parametrize("path", COURSE + LABS, ids=lambda p: p.stem)
def test_checked_cells_store_no_paths(path):
    for n, cell in enumerate(code_cells(path), 1):
        if not checked(cell):
            continue
        text = json.dumps(cell.get("outputs", []))
        assert str(ROOT) not in text and "/tmp/" not in text, f"{path.name} code cell {n} stores a machine path"


@pytest.mark.parametrize("path", COURSE, ids=lambda p: p.stem)
def test_course_notebooks_end_with_exercises(path):
    cells = json.loads(path.read_text())["cells"]
    heads = [(i, "".join(c["source"]).count("### Exercise")) for i, c in enumerate(cells) if c["cell_type"] == "markdown"]
    heads = [(i, k) for i, k in heads if k]
    assert sum(k for _, k in heads) >= 3, f"{path.name} has {sum(k for _, k in heads)} exercises"
    assert heads[0][0] > len(cells) // 2, f"{path.name}: exercises should close the notebook"


def test_the_instructor_key_answers_every_exercise():
    """notebooks/labs/exercise-answers.md has a section per course notebook, with one numbered answer per exercise."""
    import re
    key = (ROOT / "notebooks" / "labs" / "exercise-answers.md").read_text()
    sections = dict(re.findall(r"^## (\d\d) [^\n]*\n(.*?)(?=^## |\Z)", key, flags=re.M | re.S))
    for path in COURSE:
        cells = json.loads(path.read_text())["cells"]
        asked = sum("".join(c["source"]).count("### Exercise") for c in cells if c["cell_type"] == "markdown")
        answered = len(re.findall(r"^\d+\. ", sections.get(path.stem[:2], ""), flags=re.M))
        assert answered == asked, f"{path.name}: {asked} exercises, {answered} answers in the key"
