"""The labs' index (``labs.LABS``) is complete: every check a labs module defines is in it, and each lab's
notebook calls the checks its row lists."""
import importlib
import inspect
import json
import re
from pathlib import Path

from ladder_edu import labs

SOURCE = Path(__file__).resolve().parent.parent / "notebooks" / "labs" / "source"


def test_every_check_is_indexed():
    indexed = {n for _, _, modules in labs.LABS for names in modules.values() for n in names}
    defined = set()
    for module in {m for _, _, modules in labs.LABS for m in modules} | {"runner"}:
        mod = importlib.import_module(f"ladder_edu.labs.{module}")
        defined |= {n for n, f in vars(mod).items() if inspect.isfunction(f) and f.__module__ == mod.__name__
                    and (n.startswith("check_") or n == "explain_gap")}
    assert defined == indexed
    assert all(callable(getattr(labs, n)) for n in indexed) and set(labs.__all__) >= indexed
    assert all(f"``{n}``" in labs.__doc__ for n in indexed)


def test_each_notebook_calls_its_rows_checks():
    for lab, _, modules in labs.LABS:
        (path,) = (SOURCE / lab).glob("*.ipynb")
        text = "".join("".join(c["source"]) for c in json.loads(path.read_text())["cells"])
        called = set(re.findall(r"labs\.(check_\w+|explain_gap)", text))
        assert called == {n for names in modules.values() for n in names}, lab


GUIDE = SOURCE.parent / "README.md"


def test_the_guides_numbers_are_the_classroom_commands_output():
    """The guide's cost table, autograde times and class sizes are ``classroom.guide_tables`` of the committed
    output of ``python -m ladder_edu.labs.classroom cost`` and ``grade-cost``."""
    from ladder_edu.labs.classroom import guide_tables
    data = json.loads((SOURCE.parent / "classroom-cost.json").read_text())
    guide = GUIDE.read_text()
    assert {r["lab"] for r in data["cost"]} == {lab for lab, _, _ in labs.LABS}
    for name, text in guide_tables(data).items():
        assert text in guide, f"the guide's {name} is not what classroom-cost.json gives:\n{text}"


def test_each_lab_states_the_guides_time():
    from ladder_edu.labs.classroom import MINUTES
    for lab, _, _ in labs.LABS:
        (path,) = (SOURCE / lab).glob("*.ipynb")
        text = "".join("".join(c["source"]) for c in json.loads(path.read_text())["cells"] if c["cell_type"] ==
                       "markdown")
        assert re.findall(r"About (\d+) minutes", text) == [str(MINUTES[lab])], lab


def test_points_follow_the_work():
    """One point per two lines of the solution a check grades (at least one); 3 for the written deliverables."""
    for lab, _, _ in labs.LABS:
        (path,) = (SOURCE / lab).glob("*.ipynb")
        cells = json.loads(path.read_text())["cells"]
        lines = {}
        for c in cells:
            text = "".join(c["source"])
            if "### BEGIN SOLUTION" in text and c["cell_type"] == "code":
                body = text.split("### BEGIN SOLUTION")[1].split("### END SOLUTION")[0]
                lines[c["metadata"]["nbgrader"]["grade_id"]] = sum(
                    1 for ln in body.splitlines() if ln.strip() and not ln.strip().startswith("#"))
        for c in cells:
            meta = c["metadata"].get("nbgrader", {})
            if meta.get("grade") and c["cell_type"] == "code":
                fn = re.findall(r"check_\w+\((\w+)", "".join(c["source"]))[0]
                assert meta["points"] == max(1, -(-lines[fn] // 2)), (lab, fn)
            elif meta.get("grade"):
                assert meta["points"] == 3 and "Rubric" in "".join(c["source"]), lab
