"""Hints name the idea, never the code: every hint a check can print and every hint comment in the labs'
notebooks is scanned for code (a call, an index, an assignment, a comparison), and no "wrong answer" cell of a
lab is one of that lab's solutions with a line removed."""
import ast
import glob
import json
import os
import re

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CODE = re.compile(r"\w+\.\w+\(|\w\[[^\]]*\]|\w+ = |==|\w+\(\w*[,)]|`[^`]*[(\[=][^`]*`")


def check_hints() -> list[tuple[str, str]]:
    """(where, text) of every hint in ladder_edu/labs: the third argument or ``hint=`` of Verdict(...) and
    Misconception(...), and module constants named *HINT; f-strings keep their literal parts."""
    out = []
    for path in glob.glob(os.path.join(ROOT, "ladder_edu", "labs", "*.py")):
        tree = ast.parse(open(path).read())
        for node in ast.walk(tree):
            texts = []
            if isinstance(node, ast.Call) and getattr(node.func, "id", "") in ("Verdict", "Misconception"):
                args = node.args[2:3] + [k.value for k in node.keywords if k.arg == "hint"]
                texts = args
            elif isinstance(node, ast.Assign) and any(getattr(t, "id", "").endswith("HINT") for t in node.targets):
                texts = [node.value]
            for t in texts:
                for sub in ast.walk(t):
                    if isinstance(sub, ast.Constant) and isinstance(sub.value, str) and len(sub.value) > 3:
                        out.append((f"{os.path.basename(path)}:{sub.lineno}", sub.value))
    return out


def notebook_hints() -> list[tuple[str, str]]:
    """(where, text) of every "# Hint:" comment (with its continuation lines) in the labs' source notebooks."""
    out = []
    for path in glob.glob(os.path.join(ROOT, "notebooks", "labs", "source", "*", "*.ipynb")):
        for i, cell in enumerate(json.load(open(path))["cells"]):
            lines = "".join(cell["source"]).splitlines()
            for k, line in enumerate(lines):
                if line.strip().startswith("# Hint:"):
                    text = [line.strip()[len("# Hint:"):]]
                    for nxt in lines[k + 1:]:
                        if not nxt.strip().startswith("#") or nxt.strip().startswith("### BEGIN"):
                            break
                        text.append(nxt.strip().lstrip("# "))
                    out.append((f"{os.path.basename(path)} cell {i}", " ".join(text)))
    return out


def test_hints_are_found():
    assert len(check_hints()) > 30 and len(notebook_hints()) >= 15


@pytest.mark.parametrize("where, text", check_hints() + notebook_hints())
def test_no_hint_contains_code(where, text):
    assert not CODE.search(text), f"{where}: {CODE.search(text).group(0)!r} in {text!r}"


def test_the_scan_finds_planted_code():
    for planted in ("slice it: weight.chunk(world, dim=0)", "call dist.all_reduce(y)", "use w[rank]", "y = x @ w"):
        assert CODE.search(planted), planted


def _solutions_and_wrong_answers(path):
    cells = json.load(open(path))["cells"]
    solutions, wrong = [], []
    for i, cell in enumerate(cells):
        src = "".join(cell["source"])
        if "### BEGIN SOLUTION" in src:
            solutions.append(src)
        prev = "".join(cells[i - 1]["source"]).lower() if i else ""
        if cell["cell_type"] == "code" and "wrong answer" in prev:
            wrong.append(src)
    return solutions, wrong


def _code(src: str) -> str:
    """The statements of a cell: no comments, signatures, prints or solution markers."""
    return "\n".join(ln.split("#")[0] for ln in src.splitlines()
                     if not ln.strip().startswith(("#", "def ", "print(")) and "SOLUTION" not in ln)


def _calls(code: str) -> set[str]:
    """Functions, methods and attributes the code uses: what a solution's lines teach."""
    return set(re.findall(r"(\w+)\s*\(", code)) | set(re.findall(r"\.(\w+)", code))


def minus_a_line(wrong: str, solution: str) -> bool:
    """True when ``wrong`` uses nothing ``solution`` does not and lacks at most two of its calls: the solution with
    a line (or an inlined variable) removed, which hands out the rest of it."""
    w, s = _code(wrong), _code(solution)
    names = lambda c: set(re.findall(r"[A-Za-z_]\w*", c))      # noqa: E731
    return names(w) <= names(s) | {"return"} and len(_calls(s) - _calls(w)) <= 2


def test_the_rule_finds_a_planted_solution_minus_a_line():
    solution = "def f(x, w, rank, world):\n    shard = w.chunk(world, dim=1)[rank]\n    y = x @ shard.T\n" \
               "    dist.all_reduce(y)\n    return y\n"
    assert minus_a_line("def g(x, w, rank, world):\n    return x @ w.chunk(world, dim=1)[rank].T\n", solution)
    assert not minus_a_line("def g(x, w, rank, world):\n    return x @ w.T\n", solution.replace("dim=1", "dim=0")
                            .replace("dist.all_reduce(y)", "y = y.contiguous().float()"))


@pytest.mark.parametrize("path", sorted(glob.glob(os.path.join(ROOT, "notebooks", "labs", "source", "*", "*.ipynb"))),
                         ids=os.path.basename)
def test_a_wrong_answer_is_not_a_solution_minus_one_line(path):
    solutions, wrong = _solutions_and_wrong_answers(path)
    for w in wrong:
        for s in solutions:
            assert not minus_a_line(w, s), f"the wrong answer\n{w}\nis a solution with a line removed:\n{s}"
