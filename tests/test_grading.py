"""The labs in nbgrader's format, graded by the real nbgrader: the release has no solution code, the source gets
full marks, a planted wrong submission gets less, and its feedback carries the check's message."""
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

LABS = Path(__file__).resolve().parents[1] / "notebooks" / "labs"
ASSIGNMENTS = sorted(p.name for p in (LABS / "source").iterdir() if p.is_dir())
LAB = "lab2_due_rule"                 # the round trip grades the quickest lab with real ranks


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


def test_every_lab_has_objectives_graded_checks_deliverables_and_solution_regions():
    assert len(ASSIGNMENTS) >= 5
    student_lines = 0
    for a in ASSIGNMENTS:
        nb = json.loads((LABS / "source" / a / f"{a}.ipynb").read_text())
        meta = [c["metadata"].get("nbgrader", {}) for c in nb["cells"]]
        checks = [c for c, m in zip(nb["cells"], meta) if m.get("grade") and c["cell_type"] == "code"]
        assert checks and all("assert " in "".join(c["source"]) for c in checks), a
        assert any(m.get("grade") and c["cell_type"] == "markdown" for c, m in zip(nb["cells"], meta)), a
        text = "\n".join("".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "markdown")
        assert "Learning objectives" in text and "## Deliverables" in text and "1. " in text, a
        student_lines += sum(len(lines) for lines in solution_lines(nb).values())
    assert student_lines >= 140, student_lines          # students write the pieces, not a line here and there


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
    """Lab 2 answered by a student whose first loop ignores the lag (the most common mistake) and whose hybrid loop
    is right."""
    answers = {"forward_stream": "def forward_stream(x, modules, reduce, lag):\n"
                                 "    for module in modules:\n"
                                 "        x = x + reduce(module(x)).wait()\n"
                                 "    return x\n",
               "forward_hybrid": "def forward_hybrid(x, modules, lags, reduce):\n"
                                 "    pending = deque()\n"
                                 "    for module, lag in zip(modules, lags):\n"
                                 "        while len(pending) > lag:\n"
                                 "            x = x + pending.popleft().wait()\n"
                                 "        pending.append(reduce(module(x)))\n"
                                 "    while pending:\n"
                                 "        x = x + pending.popleft().wait()\n"
                                 "    return x\n"}
    for c in release["cells"]:
        gid = c["metadata"].get("nbgrader", {}).get("grade_id")
        if gid in answers:
            c["source"] = answers[gid].splitlines(keepends=True)
    return release


def test_autograde_gives_the_source_full_marks_and_a_wrong_submission_less_with_the_checks_message(course):
    """Graded two at a time (``labs.classroom.grade``), as the guide grades a class."""
    src = course / "source" / LAB / f"{LAB}.ipynb"
    for student in ("instructor", "planted"):
        (course / "submitted" / student / LAB).mkdir(parents=True)
        nbgrader(course, "db", "student", "add", student)
    shutil.copy(src, course / "submitted" / "instructor" / LAB)
    release = json.loads((course / "release" / LAB / f"{LAB}.ipynb").read_text())
    (course / "submitted" / "planted" / LAB / f"{LAB}.ipynb").write_text(json.dumps(plant_wrong_answer(release)))
    from ladder_edu.labs.classroom import grade
    graded = grade(course, LAB, workers=2)          # the guide's parallel autograde: two students at once
    assert graded["students"] == 2 and set(graded["per_student_s"]) == {"instructor", "planted"}
    from nbgrader.api import Gradebook
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gb:   # what formgrader does when a grader scores the
        written = gb.find_grade("deliverables", LAB, LAB, "instructor")    # written deliverables by hand
        written.manual_score = written.max_score
        gb.db.commit()
    nbgrader(course, "generate_feedback", LAB, "--force")
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gb:
        full = gb.find_submission(LAB, "instructor")
        planted = gb.find_submission(LAB, "planted")
        # code_score: the autograded checks (the written deliverables are graded by hand)
        assert full.code_score == full.max_code_score > 0
        assert 0 < planted.code_score < planted.max_code_score
        assert full.score == full.max_score                             # the written part counted once graded
    full_feedback = (course / "feedback" / "instructor" / LAB / f"{LAB}.html").read_text()
    assert re.search(r"Score: 3\.0 / 3\.0", full_feedback)
    feedback = (course / "feedback" / "planted" / LAB / f"{LAB}.html").read_text()
    assert "waits for every all-reduce before the next module" in feedback
    assert "cdnjs" not in feedback and not re.search(r"<script[^>]*src=[^>]*mathjax", feedback, re.I)   # offline
