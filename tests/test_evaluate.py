"""ladder-edu evaluate: any model on any text and probe, with clear errors for bad files."""
import json

import pytest

from ladder_edu.cli import main

pytest.importorskip("gguf")


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    from ladder_edu import get_config, init_weights
    from ladder_edu.recovery.safe_io import save_model_dir
    d = tmp_path_factory.mktemp("m")
    cfg = get_config("tiny", vocab_size=49152, max_seq_len=512, ladder_layers=1)
    save_model_dir(str(d), cfg, init_weights(cfg))
    return str(d)


def test_evaluate_a_model_directory_on_a_text_and_a_probe(model_dir, tmp_path, capsys):
    text = tmp_path / "t.txt"
    text.write_text("The quick brown fox jumps over the lazy dog. " * 120)
    probe = tmp_path / "p.json"
    probe.write_text(json.dumps([{"q": "What is 2 + 2?", "a": ["4", "four"]}]))
    out = tmp_path / "r.json"
    assert main(["evaluate", "--model", model_dir, "--text", str(text), "--probe", str(probe), "--json",
                 str(out)]) == 0
    r = json.loads(out.read_text())
    assert r["ladder_layers"] == 1 and r["texts"][str(text)]["blocks"] >= 1 and r["probe"]["total"] == 1
    assert "probe: " in capsys.readouterr().out


def test_bad_specs(capsys):
    with pytest.raises(SystemExit) as e:
        main(["evaluate", "--model", "nonsense"])
    assert e.value.code == 2 and "must be original, converted:K" in capsys.readouterr().err
    assert main(["evaluate", "--model", "converted:4,40", "--probe-limit", "1", "--eval-blocks", "1"]) == 2
    assert "distinct layer indices in [0, 29]" in capsys.readouterr().err


def test_bad_files(model_dir, tmp_path, capsys):
    empty = tmp_path / "empty.txt"
    empty.write_text("  \n")
    assert main(["evaluate", "--model", model_dir, "--text", str(empty)]) == 2
    assert "is empty" in capsys.readouterr().err
    short = tmp_path / "short.txt"
    short.write_text("too short")
    assert main(["evaluate", "--model", model_dir, "--text", str(short)]) == 2
    assert "shorter than one block" in capsys.readouterr().err
    for content, message in (("{not json", "cannot read probe file"), ('{"q": "x"}', "must be a JSON list"),
                             ('[{"q": "x", "a": "y"}]', "item 0")):
        bad = tmp_path / "bad.json"
        bad.write_text(content)
        assert main(["evaluate", "--model", model_dir, "--probe", str(bad)]) == 2
        assert message in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        main(["evaluate", "--model", model_dir, "--text", str(tmp_path / "missing.txt")])
    assert e.value.code == 2 and "no such file" in capsys.readouterr().err
    (tmp_path / "notadir").mkdir()
    assert main(["evaluate", "--model", str(tmp_path / "notadir")]) == 2
    assert "is not a model directory" in capsys.readouterr().err
