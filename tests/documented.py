"""Every ``ladder-edu ...`` and ``python -m ladder_edu ...`` command a user is told to run, found in the README,
docs/*.md, the notebooks (markdown and code cells) and the labs' guide, turned into an argv the parser takes.

A command is quoted in a code span or a fenced code block (prose that names a command in passing is not one).
Usage notation is read as a usage line: ``[--tp N]`` is ``--tp N``, ``{prefill,decode}`` its first choice, ``N[,M]``
``N``; a placeholder (``N``, ``FILE``, ``DIR``, ``...``) becomes a value the option's own type accepts, and paths the
command reads (``--chosen-from runs/convert``) are created in the working directory the command runs in, as the docs
presume an earlier step made them.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shlex
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SOURCES = (["README.md", "notebooks/labs/README.md", "notebooks/labs/exercise-answers.md"] +
           sorted(str(p.relative_to(ROOT)) for p in ROOT.glob("docs/*.md")) +
           sorted(str(p.relative_to(ROOT)) for p in ROOT.glob("docs/gpu/*.md")) +
           sorted(str(p.relative_to(ROOT)) for p in ROOT.glob("notebooks/*.ipynb")) +
           sorted(str(p.relative_to(ROOT)) for p in ROOT.glob("notebooks/labs/source/*/*.ipynb")))
START = re.compile(r"(?:ladder-edu|-m ladder_edu)(?=\s)")
END = re.compile(r"\s#|&&|;|\||\s>|\s2>|\n")
PLACEHOLDER = re.compile(r"^(?:[A-Z][A-Z0-9_]*(?:,[A-Z][A-Z0-9_]*)*|\.\.\.?|.*=\.\.\.)$")
REPEAT = ("..", "...")                      # "and so on" after an option's value
# Values a placeholder may become, tried in order until the option's type accepts one (paths: made by `fixtures`)
CANDIDATES = ("2", "1", "0.5", "0-2", "standard", "small", "original", "smollm2", "h100-nvlink")
BY_OPTION = {"--probe": "probe.json", "--text": "text.txt"}
BY_TYPE = {"out_file": "out.json", "out_dir": "out", "in_dir": "snapshot", "convert_dir": "convert-run",
           "in_file": "text.txt"}


def _snippets(text: str, markdown: bool):
    """Code spans and the lines of fenced blocks (continuations joined) of ``text``."""
    blocks = re.findall(r"```[^\n]*\n(.*?)```", text, flags=re.S) if markdown else []
    rest = re.sub(r"```.*?```", " ", text, flags=re.S) if markdown else text
    for block in blocks:
        yield from block.replace("\\\n", " ").splitlines()
    for span in re.findall(r"`([^`]+)`", rest):
        yield " ".join(span.split())
    if not markdown:                                         # a shell line in a code cell
        yield from (line[1:] for line in text.splitlines() if line.lstrip().startswith("!"))


def quoted_commands() -> list[tuple[str, str]]:
    """(source file, command text from ``ladder-edu`` on) for every command quoted in ``SOURCES``."""
    found = []
    for name in SOURCES:
        path = ROOT / name
        if name.endswith(".ipynb"):
            cells = [("".join(c["source"]), c["cell_type"] == "markdown") for c in json.loads(path.read_text())["cells"]]
        else:
            cells = [(path.read_text(), True)]
        for text, markdown in cells:
            for snippet in _snippets(text, markdown):
                for m in START.finditer(snippet):
                    rest = snippet[m.end():]
                    cut = END.search(rest)
                    command = ("ladder-edu" + (rest[:cut.start()] if cut else rest)).strip()
                    words = command.split()
                    if len(words) > 1 and re.fullmatch(r"[a-z][a-z-]*", words[1]) and (name, command) not in found:
                        found.append((name, command))
    return found


def subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    return next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices


def fixtures(cwd: Path) -> None:
    """The files a documented command presumes: a convert run (its layer choice), a text, a probe, a snapshot."""
    run = cwd / "convert-run"
    run.mkdir(exist_ok=True)
    (run / "results.json").write_text(json.dumps({"k": 15, "choice": {"order": list(range(29, 9, -1))},
                                                  "rows": {}}))
    (cwd / "text.txt").write_text("A held-out text.\n")
    (cwd / "probe.json").write_text(json.dumps([{"q": "What is 2 + 2?", "a": ["4"]}]))
    (cwd / "snapshot").mkdir(exist_ok=True)


def _accepts(action, value: str) -> bool:
    try:
        v = action.type(value) if action.type else value
    except (argparse.ArgumentTypeError, ValueError, TypeError):
        return False
    return action.choices is None or v in action.choices


def to_argv(command: str, parser: argparse.ArgumentParser, cwd: Path) -> list[str]:
    """The argv after ``ladder-edu`` for a quoted command, usage notation read (module docstring); a path the command
    reads is created under ``cwd`` (the directory it will run in)."""
    words = shlex.split(command.replace("[,", ",").replace("[", " ").replace("]", " "))[1:]
    words = [re.sub(r"^\{([^,}]+),[^}]*\}$", r"\1", w) for w in words]            # {a,b}: a
    sub = subcommands(parser).get(words[0]) if words else None
    argv = words[:1]
    i = 1
    while i < len(words):
        word = words[i]
        action = sub._option_string_actions.get(word.split("=")[0]) if sub is not None else None
        prev = sub._option_string_actions.get(argv[-1]) if sub is not None and argv[-1].startswith("--") else None
        taking = prev is not None and prev.nargs != 0
        if word in REPEAT and not taking:
            i += 1
            continue
        if PLACEHOLDER.match(word) and taking:
            kind = getattr(prev.type, "__name__", "")
            options = ([BY_OPTION[argv[-1]]] if argv[-1] in BY_OPTION else
                       ["out.png" if word == "PNG" else BY_TYPE[kind]] if kind in BY_TYPE else
                       list(prev.choices or ()) or list(CANDIDATES))
            word = next((c for c in options if _accepts(prev, str(c))), word)
        elif action is None and taking:                                              # a concrete value
            kind = getattr(getattr(prev, "type", None), "__name__", "")
            if kind == "convert_dir" and not os.path.isabs(word):
                target = cwd / word
                target.parent.mkdir(parents=True, exist_ok=True)
                if not target.exists():
                    os.symlink(cwd / "convert-run", target)
            elif kind in ("in_dir",) and not os.path.isabs(word):
                (cwd / word).mkdir(parents=True, exist_ok=True)
        argv.append(str(word))
        i += 1
    return argv
