"""Bad input, everywhere: every option of every command, given out-of-range or malformed values, ends with exit
status 2 and one line that names the option, before any work starts."""
import argparse

import pytest

from ladder_edu.cli import build_parser, main

REQUIRED = {"profile": [("--out", "{tmp}")], "evaluate": [("--model", "original")],
            "calibrate-gpu": [("--out", "{tmp}/gpu.json")]}      # what a command needs besides the tested option


VALID = ("must be", "valid choices", "choose from")     # how a message says what is valid, when no range applies
# Malformed or out-of-range values tried on every option: each that an option's type refuses must end in one line
CANDIDATES = ("abc", "1.5", "1e999", "nan", "0", "-1", "101", "100000", "", "x", ",", "1,x", "2,,-3", "1,-2",
              "no-such-variant", "standard,nope", "3", "2-1", "a-b", "-1-2", "/proc/ladder_edu_cannot_write",
              "/proc/ladder_edu_cannot_write.json", "/etc/hostname/sub", "/no/such/file.txt", "/no/such/dir",
              "/no/such/model.gguf", "/", "smollm3", "nonsense", "converted:x", "converted:-1", "tpu",
              "/no/such/gpu.json", "flop_eff", "nope=1", "flop_eff=abc", "link_gbps=-3", "name=x")


def refuses(kind, value: str) -> bool:
    try:
        kind(value)
    except argparse.ArgumentTypeError:
        return True
    return False


def commands():
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return sub.choices


def bad_cases():
    """(command, option, bad value) for every option that takes a value."""
    cases = []
    for name, parser in commands().items():
        for action in parser._actions:
            if not action.option_strings or action.nargs == 0 or action.dest == "help":
                continue
            option = max(action.option_strings, key=len)
            examples = [v for v in CANDIDATES if action.type is not None and refuses(action.type, v)][:4]
            valid = getattr(action.type, "valid", "") or VALID          # a range, or what a valid value looks like
            cases += [(name, option, v, valid) for v in examples]
            if action.choices is not None:
                cases.append((name, option, "no-such-choice", "choose from"))
            if not cases or cases[-1][1] != option:
                cases.append((name, option, None, ""))        # an option nobody checks: fails below
    return cases


CASES = bad_cases()


def test_the_sweep_covers_every_command():
    assert {c for c, _, _, _ in CASES} == set(commands()) and len(CASES) > 150
    print(f"{len(CASES)} bad-input cases over {len(commands())} commands")


@pytest.mark.parametrize("command,option,value,valid", CASES, ids=[f"{c} {o} {v!r}" for c, o, v, _ in CASES])
def test_bad_value_exits_2_with_one_line_naming_the_option_and_what_is_valid(command, option, value, valid, tmp_path,
                                                                             capsys):
    assert value is not None, f"{command} {option} takes any value: give it a checked type or choices"
    argv = [command] + [f"{o}={v.format(tmp=tmp_path)}" for o, v in REQUIRED.get(command, []) if o != option] + \
        [f"{option}={value}"]
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    err = capsys.readouterr().err.strip()
    assert exit_.value.code == 2
    assert len(err.splitlines()) == 1 and option in err, err
    assert err.startswith(f"ladder-edu {command}: error: argument {option}")
    said = any(v in err for v in VALID) if valid is VALID else valid in err
    assert said, f"the message does not say what is valid ({valid!r}): {err}"


def test_integer_bounds_are_printed():
    from ladder_edu.cli.common import ints
    with pytest.raises(argparse.ArgumentTypeError, match="must be an integer >= 1, got '0'"):
        ints(1)("0")
    with pytest.raises(argparse.ArgumentTypeError, match="must be an integer >= 1 and <= 8, got 'x'"):
        ints(1, 8)("x")


def test_good_values_still_parse(tmp_path):
    args = build_parser().parse_args(["bench", "--tp", "2,4", "--batch", "1,16", "--arch", "standard,ladder",
                                      "--json", str(tmp_path / "new" / "b.json")])
    assert args.tp == [2, 4] and args.batch == [1, 16] and args.arch == ["standard", "ladder"]
    args = build_parser().parse_args(["profile", "--out", str(tmp_path / "p"), "--layers", "1-3"])
    assert args.layers == (1, 3)
    args = build_parser().parse_args(["predict", "--set", "flop_eff=0.5"])
    assert args.set == [("flop_eff", 0.5)]


def test_a_missing_required_option_is_one_line_too(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["profile"])
    err = capsys.readouterr().err.strip()
    assert exit_.value.code == 2 and len(err.splitlines()) == 1 and "--out" in err
