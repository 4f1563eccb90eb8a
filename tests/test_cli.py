"""The ladder-edu command line: check, errors, and a --help that explains every option."""
import json
import subprocess
import sys

import pytest

from ladder_edu.cli import build_parser, main


def test_check_passes_and_writes_json(tmp_path, capsys):
    out = tmp_path / "check.json"
    assert main(["check", "--arch", "ladder", "--tp", "2", "--json", str(out)]) == 0
    assert "PASS  ladder" in capsys.readouterr().out
    data = json.loads(out.read_text())
    assert data["passed"] and data["tp"] == 2 and data["max_abs_diff"] < 1e-4 and data["tokens_equal"]


def test_check_hybrid(capsys):
    assert main(["check", "--ladder-layers", "2", "--tp", "2"]) == 0
    assert "last 2 layers ladder" in capsys.readouterr().out


def test_check_compiled_decode(capsys):
    """Greedy tokens of compiled decode on 2 gloo ranks equal those of the eager model on one device: a hybrid
    whose ladder layers are a set (0 and 2 of 4) rather than the top k."""
    assert main(["check", "--arch", "standard", "--ladder-layers", "0,2", "--tp", "2", "--compile"]) == 0
    assert "PASS  standard (layers 0,2 ladder), compiled decode" in capsys.readouterr().out


def test_check_fails_with_exit_1_on_mismatch(capsys):
    assert main(["check", "--arch", "standard", "--tp", "2", "--tolerance", "0"]) == 1
    assert "FAIL" in capsys.readouterr().out


@pytest.mark.parametrize("argv, message", [
    (["check", "--tp", "3"], "TP degree 3 cannot shard model 'tiny'"),
    (["check", "--arch", "ladder", "--ladder-layers", "2"], "ladder_layers converts"),
    (["check", "--backend", "nccl"], "valid choice on this machine: gloo"),
    (["bench", "--compile", "--emulate-tp", "8"], "--compile cannot be combined with --emulate-tp"),
    (["bench", "--compile", "--phase", "prefill", "--preset", "tiny"], "compile applies to decode"),
    (["bench", "--graph"], "--graph captures the emulated rank: add --emulate-tp N"),
    (["bench", "--graph", "--emulate-tp", "2", "--phase", "prefill"], "valid with it: --phase decode"),
    (["bench", "--graph", "--emulate-tp", "2", "--preset", "tiny"], "--graph needs a CUDA GPU"),
])
def test_bad_input_exits_2_with_a_message(argv, message, capsys):
    import torch
    if ("nccl" in argv or "--graph" in argv) and torch.cuda.is_available():
        pytest.skip("CUDA exists here")
    assert main(argv) == 2
    assert message in capsys.readouterr().err


def test_argparse_rejects_unknown_choices(capsys):
    with pytest.raises(SystemExit) as e:
        main(["check", "--arch", "mamba"])
    assert e.value.code == 2
    assert "invalid choice: 'mamba'" in capsys.readouterr().err


def test_help_documents_every_option():
    parser = build_parser()
    sub = parser._subparsers._group_actions[0]
    for name, p in sub.choices.items():
        for action in p._actions:
            assert action.help, f"{name} {action.option_strings} has no help text"


def test_module_entry_point_help():
    out = subprocess.run([sys.executable, "-m", "ladder_edu", "--help"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and "tour" in out.stdout and "check" in out.stdout


def test_same_entry_point_runs_under_torchrun(tmp_path):
    """torchrun starts the ranks; ladder_edu.tp.launch.run then runs on them instead of spawning its own."""
    out = tmp_path / "tr.json"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--standalone",
           "-m", "ladder_edu", "check", "--arch", "ladder", "--tp", "2", "--json", str(out)]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr[-2000:]
    assert res.stdout.count("PASS  ladder") == 1          # only rank 0 prints
    assert json.loads(out.read_text())["passed"]


def test_bench_writes_json_csv_and_plot(tmp_path, capsys):
    out = tmp_path / "b"
    assert main(["bench", "--preset", "tiny", "--tp", "2", "--batch", "1,2", "--context", "8", "--steps", "2",
                 "--rounds", "1", "--json", f"{out}.json", "--csv", f"{out}.csv", "--plot", f"{out}.png"]) == 0
    data = json.loads((tmp_path / "b.json").read_text())
    assert len(data["results"]) == 2 and len(data["rows"]) == 10          # 5 variants, Kraken included
    assert (tmp_path / "b.csv").read_text().splitlines()[0].startswith("phase,preset,tp")
    assert (tmp_path / "b.png").stat().st_size > 1000
    assert main(["bench", "--preset", "tiny", "--tp", "2", "--phase", "prefill", "--context", "8", "--steps", "1",
                 "--rounds", "1", "--arch", "standard,ladder"]) == 0
    assert "prefill, preset tiny" in capsys.readouterr().out


def test_bench_rejects_bad_lists(capsys):
    with pytest.raises(SystemExit) as e:
        main(["bench", "--tp", "two"])
    assert e.value.code == 2 and "argument --tp: must be comma-separated integers" in capsys.readouterr().err


def test_predict_and_validate(tmp_path, capsys):
    out = tmp_path / "p.json"
    assert main(["predict", "--model", "llama-3-70b", "--gpu", "h100-nvlink", "--tp", "8", "--batch", "1",
                 "--json", str(out)]) == 0
    pred = json.loads(out.read_text())["prediction"]
    assert set(pred) == {"standard", "parallel", "ladder", "upper_bound", "kraken"}
    assert 1.2 < pred["ladder"]["speedup_vs_standard"] < 1.4            # the paper measured 1.31
    capsys.readouterr()
    png = tmp_path / "explain.png"
    assert main(["predict", "--model", "llama-3.1-405b", "--tp", "16", "--nodes", "2", "--explain", str(png)]) == 0
    out = capsys.readouterr().out
    assert "TP=16 on 2 node(s)" in out and "exposed communication" in out and png.stat().st_size > 0
    assert main(["predict", "--sweep", "--batch", "4", "--ladder-layers", "40"]) == 0
    assert "ladder speedup over standard (tokens/s), batch 4" in capsys.readouterr().out
    assert main(["predict", "--model", "1b", "--tp", "16"]) == 2
    assert "valid TP degrees: 1, 2, 4, 8" in capsys.readouterr().err
    assert main(["predict", "--tp", "8", "--nodes", "3"]) == 2
    assert "--nodes 3 must divide TP=8" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        main(["predict", "--gpu", "tpu"])
    assert e.value.code == 2 and "h100-nvlink" in capsys.readouterr().err
