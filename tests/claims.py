"""The numbers a course notebook's markdown states, and where each one may come from.

A quantitative statement in markdown is allowed only when (a) docs/references.md holds the number (a paper's, with
its arXiv id there), or (b)/(c) a stored output of the same notebook prints it: then the cell that produces it
prints (and where deterministic, asserts) it, and a rerun that changes it changes the output, which a reader sees
next to the prose. A "number" is a decimal (0.8, 1.31), a percentage (38%) or a factor (1.2x, 64x). Inline code
(`t_comm=0.8`), math (`\\(...\\)`, `$$...$$`), links and names with digits (Llama-3.1-8B, H100, arXiv ids) are not
claims.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
REFERENCES = ROOT / "docs" / "references.md"
_STRIP = [r"```.*?```", r"`[^`]*`", r"\\\(.*?\\\)", r"\$\$.*?\$\$", r"\$[^$]*\$", r"\]\([^)]*\)", r"https?://\S+",
          r"arXiv:?\s*\d{4}\.\d{4,5}", r"\d{4}\.\d{4,5}"]
NUMBER = re.compile(r"(?<![\w.\-/])(\d+(?:\.\d+)?%|\d+\.\d+x?|\d+(?:\.\d+)?x|\d+\.\d+)(?![\w.]*[A-Za-wyz])")


def numbers(markdown: str) -> list[str]:
    """The claims' numbers in ``markdown``, normalised (a trailing "x" or "%" kept)."""
    text = markdown
    for pat in _STRIP:
        text = re.sub(pat, " ", text, flags=re.S)
    return [m.group(1) for m in NUMBER.finditer(text)]


def printed(nb: dict) -> str:
    """Every stored text output of a notebook, one string."""
    out = []
    for c in nb["cells"]:
        for o in c.get("outputs", []):
            t = o.get("text") or o.get("data", {}).get("text/plain") or ""
            out.append(t if isinstance(t, str) else "".join(t))
    return "\n".join(out)


def backed(number: str, outputs: str, references: str) -> bool:
    """Whether ``number`` appears as a number (not inside a longer one) in the outputs or the references."""
    core = number.rstrip("x%")
    pat = re.compile(r"(?<![\d.])" + re.escape(core) + r"(?!\d)")
    return bool(pat.search(outputs) or pat.search(references))


def unbacked(path: Path) -> list[tuple[int, str]]:
    """(cell index, number) for every markdown number the notebook's outputs and docs/references.md do not hold."""
    nb = json.loads(path.read_text())
    outputs, refs = printed(nb), REFERENCES.read_text()
    return [(i, n) for i, c in enumerate(nb["cells"]) if c["cell_type"] == "markdown"
            for n in numbers("".join(c["source"])) if not backed(n, outputs, refs)]
