"""Every command a user is told to run works: each ``ladder-edu`` command quoted in the README, docs/*.md, the
notebooks and the labs' guide parses with the package's own parser; each subcommand runs its documented path (the
quick ones for real on the tiny preset, the long ones to their ``--plan``); and an option of a command reaches what
the command runs (no second copy of a command's options drops one)."""
import argparse
import re
from dataclasses import fields

import pytest

from tests.documented import fixtures, quoted_commands, subcommands, to_argv
from ladder_edu.cli.main import build_parser, main
from ladder_edu.recovery.options import LIBRARY_ONLY, RECIPE_STAGES, ConvertOptions

QUOTED = quoted_commands()
LONG = ("finetune", "convert", "frontier", "from-scratch", "calibrate-gpu", "evaluate")   # they have --plan
# A quick command's real run on this machine: its documented options, sizes made tiny (what a value is set to)
SHRINK = {"--preset": "tiny", "--tp": "2", "--context": "8", "--steps": "2", "--rounds": "2", "--batch": "1",
          "--iters": "3", "--tokens": "4", "--prompt": "8", "--layers": "0-1", "--ranks": "2"}
ADD = {"tour": ["--preset", "tiny", "--steps", "2", "--rounds", "2", "--context", "8"],
       "bench": ["--preset", "tiny", "--steps", "2", "--rounds", "2", "--context", "8"],
       "profile": ["--preset", "tiny", "--steps", "2", "--context", "8"], "check": ["--preset", "tiny"],
       "compare-hf": ["--rounds", "1", "--tokens", "4", "--prompt", "8"], "overlap-probe": ["--iters", "3"]}


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    """The directory a documented command runs in, with the files the docs presume an earlier step wrote."""
    fixtures(tmp_path)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _id(item):
    source, command = item
    return f"{source.rsplit('/', 1)[-1]}: {command[:70]}"


def test_the_course_and_docs_quote_every_subcommand():
    quoted = {command.split()[1] for _, command in QUOTED}
    assert quoted == set(subcommands(build_parser())), "a subcommand nobody documents, or a misspelt one"
    assert len(QUOTED) > 60


@pytest.mark.parametrize("item", QUOTED, ids=[_id(q) for q in QUOTED])
def test_every_quoted_command_parses(item, workdir, capsys):
    source, command = item
    parser = build_parser()
    argv = to_argv(command, parser, workdir)
    assert argv[0] in subcommands(parser), f"{source}: no subcommand {argv[0]!r} ({command})"
    if len(argv) == 1:                         # the command named, not run: nothing more to check
        return
    try:
        parser.parse_args(argv)
    except SystemExit:
        pytest.fail(f"{source} quotes `{command}`, which the parser refuses: {capsys.readouterr().err.strip()}")


PLANNED = [q for q in QUOTED if q[1].split()[1] in LONG]


@pytest.mark.parametrize("item", PLANNED, ids=[_id(q) for q in PLANNED])
def test_every_quoted_long_command_plans(item, workdir, capsys):
    """The long commands' documented paths, through the same entry point, up to the work: ``--plan``."""
    source, command = item
    argv = to_argv(command, build_parser(), workdir)
    required = [a for a in subcommands(build_parser())[argv[0]]._actions if a.required]
    if len(argv) == 1 and required:            # named, not run (`ladder-edu calibrate-gpu` needs --out)
        return
    assert main(argv + ["--plan"]) == 0, f"{source}: `{command}` --plan: {capsys.readouterr().err.strip()}"
    assert "--plan (nothing is run)" in capsys.readouterr().out


def _concrete(command: str) -> bool:
    return not re.search(r"\[|\{|\b[A-Z]{1,4}\b|\.\.", command)


def _runs():
    """Per quick subcommand, the concrete documented invocation with the most options (ties: the first quoted)."""
    best = {}
    for source, command in QUOTED:
        name = command.split()[1]
        if name in LONG or not _concrete(command):
            continue
        if len(command.split()) > len(best.get(name, (None, "x"))[1].split()):
            best[name] = (source, command)
    return sorted(best.values(), key=lambda q: q[1])


RUNS = _runs()


def test_every_quick_subcommand_has_a_concrete_documented_invocation():
    quick = set(subcommands(build_parser())) - set(LONG)
    assert {c.split()[1] for _, c in RUNS} == quick


@pytest.mark.parametrize("item", RUNS, ids=[_id(q) for q in RUNS])
def test_each_quick_subcommand_runs_its_documented_options(item, workdir, capsys):
    source, command = item
    argv = to_argv(command, build_parser(), workdir)
    shrunk = [SHRINK.get(argv[i - 1], w) if i and argv[i - 1] in SHRINK else w for i, w in enumerate(argv)]
    shrunk += [w for o, v in zip(ADD.get(argv[0], [])[::2], ADD.get(argv[0], [])[1::2]) if o not in shrunk
               for w in (o, v)]
    assert main(shrunk) == 0, f"{source}: `{command}` as {shrunk}: {capsys.readouterr().err.strip()}"


# --- an option reaches what its command runs -------------------------------------------------------------------

def test_convert_options_are_the_commands_options():
    """``ladder-edu convert``'s options are ``ConvertOptions``' fields, with its defaults (finetune's recipe builds
    the same object): an option added to the parser but not to the options, or the reverse, fails here."""
    parser = subcommands(build_parser())["convert"]
    dests = {a.dest: a.default for a in parser._actions if a.dest not in ("help", "plan", "plot", "json")}
    defaults = ConvertOptions()
    assert set(dests) == {f.name for f in fields(ConvertOptions)} - set(LIBRARY_ONLY)
    for name, default in dests.items():
        want = getattr(defaults, name)
        assert (tuple(default) if isinstance(default, list) else default) == want, name


def _plan(argv, capsys) -> list[str]:
    assert main(argv + ["--plan"]) == 0, capsys.readouterr().err
    return capsys.readouterr().out.splitlines()[1:]


def test_finetune_runs_convert_with_the_same_options(workdir, capsys):
    """``ladder-edu finetune`` is convert's recipe: the same options, every default included."""
    for extra in ([], ["--ladder-layers", "7", "--steps", "9", "--eval-blocks", "3", "--probe-limit", "2"]):
        convert = [("--choose" if w == "--ladder-layers" else w) for w in extra]
        assert _plan(["finetune", *extra], capsys) == \
            _plan(["convert", *convert, "--stages", ",".join(RECIPE_STAGES)], capsys)


CANDIDATES = ("7", "0.37", "converted:7", "3,5", "fwd-out", "fwd.json", "probe.json", "text.txt", "snapshot",
              "convert-run", "h100-nvlink", "a100-nvswitch")
FORWARDED = [(["finetune"], ()), (["finetune", "--runs", "plain"], ()), (["frontier"], ("--chosen-from",)),
             (["frontier", "--chosen-from", "convert-run"], ("--lr", "--method", "--prompts")), (["convert"], ()),
             (["evaluate", "--model", "original"], ()), (["from-scratch"], ()),
             (["calibrate-gpu", "--out", "cal.json"], ())]


@pytest.mark.parametrize("base,skip", FORWARDED, ids=[" ".join(b) for b, _ in FORWARDED])
def test_every_option_reaches_the_plan(base, skip, workdir, capsys):
    """Each option of a long command, given a value other than its default, shows in what ``--plan`` says the
    run would use: an option parsed but not passed on to the run fails here."""
    parser = subcommands(build_parser())[base[0]]
    before = "\n".join(_plan(base, capsys))
    recipe_mode = base == ["finetune"]
    checked = 0
    for action in parser._actions:
        option = max(action.option_strings, key=len, default="")
        if not option or action.nargs == 0 or option in base or option in skip:
            continue
        if recipe_mode and action.dest in parser.get_default("topk_defaults"):
            continue                                   # refused without --runs (tested in test_cli_errors)
        listed = getattr(action.type, "choices", ())            # a comma-separated list's names: its last one
        values = [str(c) for c in (action.choices or listed[-1:] or CANDIDATES)]
        value = next((v for v in values if _valid(action, v)), None)
        assert value is not None, f"no test value for {base[0]} {option}"
        after = "\n".join(_plan(base + [option, value], capsys))
        assert after != before and value in after, \
            f"{' '.join(base)} {option} {value}: the plan is unchanged, so the value does not reach the run"
        checked += 1
    assert checked >= 3


def _valid(action, value) -> bool:
    try:
        parsed = action.type(value) if action.type else value
    except (argparse.ArgumentTypeError, ValueError, TypeError):
        return False
    return parsed != action.default and (action.choices is None or parsed in action.choices)
