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
