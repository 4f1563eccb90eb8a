"""The labs in nbgrader's format, graded by the real nbgrader: the release has no solution code, the source gets
full marks, a planted wrong submission gets less, and its feedback carries the check's message."""
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

LABS = Path(__file__).resolve().parents[1] / "notebooks" / "labs"
ASSIGNMENTS = sorted(p.name for p in (LABS / "source").iterdir() if p.is_dir())
LAB1 = "lab1_tensor_parallel_linear"


def nbgrader(course: Path, *args) -> str:
    res = subprocess.run([sys.executable, "-m", "nbgrader", *args], cwd=course, capture_output=True, text=True,
                         timeout=600)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    return res.stdout + res.stderr


@pytest.fixture(scope="module")
def course(tmp_path_factory):
    root = tmp_path_factory.mktemp("course")
    shutil.copytree(LABS / "source", root / "source")
    shutil.copy(LABS / "nbgrader_config.py", root)
    for a in ASSIGNMENTS:
        nbgrader(root, "generate_assignment", a, "--force")
    return root


def solution_lines(nb: dict) -> dict[str, set[str]]:
    """{grade_id: the code lines between ### BEGIN SOLUTION and ### END SOLUTION} of a source notebook."""
    out = {}
    for c in nb["cells"]:
        inside, gid = False, c["metadata"].get("nbgrader", {}).get("grade_id")
        for line in "".join(c["source"]).splitlines():
            s = line.strip()
            if s == "### BEGIN SOLUTION":
                inside = True
            elif s == "### END SOLUTION":
                inside = False
            elif inside and s and not s.startswith("#"):
                out.setdefault(gid, set()).add(s)
    return out


def test_every_lab_has_graded_checks_and_solution_regions():
    assert len(ASSIGNMENTS) >= 5
    for a in ASSIGNMENTS:
        nb = json.loads((LABS / "source" / a / f"{a}.ipynb").read_text())
        graded = [c for c in nb["cells"] if c["metadata"].get("nbgrader", {}).get("grade")]
        assert graded and all("assert " in "".join(c["source"]) for c in graded), a
        assert solution_lines(nb), a


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_the_release_contains_no_solution_code(course, assignment):
    source = json.loads((course / "source" / assignment / f"{assignment}.ipynb").read_text())
    release = json.loads((course / "release" / assignment / f"{assignment}.ipynb").read_text())
    code = "\n".join("".join(c["source"]) for c in release["cells"] if c["cell_type"] == "code")
    cells = {c["metadata"].get("nbgrader", {}).get("grade_id"): "".join(c["source"]) for c in release["cells"]}
    for gid, lines in solution_lines(source).items():
        body = cells[gid].splitlines()
        leaked = [line for line in lines if any(b.strip() == line for b in body[1:])]   # the def line stays
        assert not leaked, f"{assignment} {gid}: solution lines in the release: {leaked}"
        assert "raise NotImplementedError()" in cells[gid]
    assert "BEGIN SOLUTION" not in code
    assert all(not c.get("outputs") for c in release["cells"] if c["cell_type"] == "code")


def plant_wrong_answer(release: dict) -> dict:
    """Lab 1 answered by a student who gives every rank rank 0's block (column-parallel) and gets row-parallel
    right."""
    answers = {"column_parallel": "def column_parallel(x, weight, rank, world):\n"
                                  "    return x @ weight.chunk(world, dim=0)[0].T\n",
               "row_parallel": "def row_parallel(x_shard, weight, rank, world):\n"
                               "    y = x_shard @ weight.chunk(world, dim=1)[rank].T\n"
                               "    dist.all_reduce(y)\n    return y\n"}
    for c in release["cells"]:
        gid = c["metadata"].get("nbgrader", {}).get("grade_id")
        if gid in answers:
            c["source"] = answers[gid].splitlines(keepends=True)
    return release


def test_autograde_gives_the_source_full_marks_and_a_wrong_submission_less_with_the_checks_message(course):
    src = course / "source" / LAB1 / f"{LAB1}.ipynb"
    for student in ("instructor", "planted"):
        (course / "submitted" / student / LAB1).mkdir(parents=True)
        nbgrader(course, "db", "student", "add", student)
    shutil.copy(src, course / "submitted" / "instructor" / LAB1)
    release = json.loads((course / "release" / LAB1 / f"{LAB1}.ipynb").read_text())
    (course / "submitted" / "planted" / LAB1 / f"{LAB1}.ipynb").write_text(json.dumps(plant_wrong_answer(release)))
    nbgrader(course, "autograde", LAB1, "--force")
    nbgrader(course, "generate_feedback", LAB1, "--force")
    from nbgrader.api import Gradebook
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gb:
        full = gb.find_submission(LAB1, "instructor")
        planted = gb.find_submission(LAB1, "planted")
        assert full.score == full.max_score > 0
        assert 0 < planted.score < planted.max_score
    feedback = (course / "feedback" / "planted" / LAB1 / f"{LAB1}.html").read_text()
    assert "returned rank 0&#39;s slice" in feedback or "returned rank 0's slice" in feedback
