"""Test session setup: every tool writes under one scratch dir, one thread per process, notebooks in quick mode."""
import os
import shutil
import tempfile

import pytest

_SCRATCH = tempfile.mkdtemp(prefix="ladder_edu_tests_")
for _var in ("HOME", "TMPDIR", "MPLCONFIGDIR", "JUPYTER_RUNTIME_DIR", "IPYTHONDIR", "HF_HOME",
             "TORCHINDUCTOR_CACHE_DIR", "XDG_CACHE_HOME"):
    os.environ[_var] = os.path.join(_SCRATCH, _var.lower())
    os.makedirs(os.environ[_var], exist_ok=True)
tempfile.tempdir = None                    # re-read TMPDIR
os.environ["OMP_NUM_THREADS"] = "1"
os.environ["MPLBACKEND"] = "Agg"
os.environ["HF_HUB_OFFLINE"] = "1"          # checkpoints come from installed packages, never from a hub
os.environ["LADDER_EDU_QUICK"] = "1"       # notebooks run their quick mode under pytest


@pytest.fixture(scope="session", autouse=True)
def _cleanup_scratch():
    yield
    shutil.rmtree(_SCRATCH, ignore_errors=True)
