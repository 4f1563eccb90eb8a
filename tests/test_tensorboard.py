"""TensorBoard with the torch-tb-profiler plugin lists our profile runs and their Distributed view.

The plugin is deprecated upstream (removed from kineto in 2026), so it is an optional extra; Perfetto is the
default viewer. CI installs the extra, and there a missing plugin fails instead of skipping.
"""
import json
import os
import subprocess
import sys
import time
import urllib.request

import pytest

from ladder_edu import get_config
from ladder_edu.tp.launch import free_port
from ladder_edu.profiling.trace import profile


def _get(url):
    with urllib.request.urlopen(url, timeout=5) as r:
        return json.loads(r.read())


def test_tensorboard_lists_runs_and_distributed_view(tmp_path):
    try:
        import tensorboard  # noqa: F401
        import torch_tb_profiler  # noqa: F401
    except ImportError:
        if os.environ.get("CI"):
            raise
        pytest.skip("pip install 'ladder_edu[tensorboard]' to run this check")
    profile(get_config("tiny"), ["standard", "ladder"], 2, "decode", str(tmp_path), steps=1, warmup=1)
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "tensorboard.main", "--logdir", str(tmp_path / "traces"),
                               "--host", "127.0.0.1", "--port", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}/data/plugin/pytorch_profiler"
    try:
        runs, deadline = [], time.monotonic() + 90
        while time.monotonic() < deadline:
            try:
                data = _get(f"{base}/runs")
                runs = data["runs"]
                if sorted(runs) == ["ladder", "standard"] and not data.get("loading"):
                    break
            except OSError:
                pass
            time.sleep(1)
        assert sorted(runs) == ["ladder", "standard"]
        for run in runs:
            assert _get(f"{base}/workers?run={run}&view=Overview") == ["rank0", "rank1"]
            assert "Distributed" in _get(f"{base}/views?run={run}")
    finally:
        server.terminate()
        server.wait(timeout=20)
