"""Student notebooks are generated from the solutions: one source, no two hand-kept copies.

In a solution notebook, the lines between ``# BEGIN SOLUTION`` and ``# END SOLUTION`` (inside a code cell) are the
answer. ``make_student`` replaces each such block by ``raise NotImplementedError("...")`` at the same indentation
(a comment keeps the block's first line of explanation if it starts with ``# hint:``), clears every output, and
writes the student notebook. ``python -m ladder_edu.labs.student notebooks/labs`` regenerates them all;
``tests/test_labs.py`` fails if a committed student notebook differs from its generated version.
"""
from __future__ import annotations

import json
import os
import sys

BEGIN, END = "# BEGIN SOLUTION", "# END SOLUTION"


def strip_solutions(source: str) -> str:
    """The source with every solution block replaced by a NotImplementedError of the same indentation."""
    out, inside, hint = [], False, ""
    for line in source.splitlines(keepends=True):
        stripped = line.strip()
        if stripped.startswith(BEGIN):
            inside, indent, hint = True, line[:len(line) - len(line.lstrip())], ""
            continue
        if inside and stripped.startswith(END):
            inside = False
            if hint:
                out.append(f"{indent}{hint}\n")
            out.append(f'{indent}raise NotImplementedError("your code here")\n')
            continue
        if inside:
            if not hint and stripped.startswith("# hint:"):
                hint = stripped
            continue
        out.append(line)
    if inside:
        raise ValueError(f"a {BEGIN!r} without its {END!r}")
    return "".join(out)


def make_student(solution: dict) -> dict:
    """The student version of a solution notebook (a dict as in the .ipynb JSON)."""
    nb = json.loads(json.dumps(solution))
    for cell in nb["cells"]:
        if cell["cell_type"] == "code":
            src = "".join(cell["source"])
            cell["source"] = strip_solutions(src).splitlines(keepends=True)
            cell["outputs"], cell["execution_count"] = [], None
    nb["metadata"].pop("widgets", None)
    return nb


def student_path(solution_path: str) -> str:
    folder, name = os.path.split(solution_path)
    return os.path.join(os.path.dirname(folder), "student", name)


def regenerate(labs_dir: str) -> list[str]:
    """Write notebooks/labs/student/X.ipynb for every notebooks/labs/solutions/X.ipynb; returns the paths."""
    written = []
    src_dir = os.path.join(labs_dir, "solutions")
    for name in sorted(os.listdir(src_dir)):
        if name.endswith(".ipynb"):
            with open(os.path.join(src_dir, name)) as f:
                nb = make_student(json.load(f))
            path = student_path(os.path.join(src_dir, name))
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "w") as f:
                json.dump(nb, f, indent=1)
                f.write("\n")
            written.append(path)
    return written


if __name__ == "__main__":
    for p in regenerate(sys.argv[1] if len(sys.argv) > 1 else "notebooks/labs"):
        print("wrote", p)
