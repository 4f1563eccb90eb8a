"""Test session setup: every tool writes under one scratch dir per test process, one thread per process, notebooks in
quick mode. The suite runs on two pytest-xdist workers, one test file (or notebook) per worker at a time."""
import atexit
import os
import shutil
import tempfile

# pytest-xdist's workers inherit the controller's environment: each makes its scratch dir beside the controller's,
# not inside it (Chromium's socket path must stay under 108 characters).
_BASE = os.environ.setdefault("LADDER_EDU_TESTS_BASE", tempfile.gettempdir())
_SCRATCH = tempfile.mkdtemp(prefix="ladder_edu_tests_", dir=_BASE)
# Caches that are safe to share between processes (inductor's compiled kernels, the tokenizer built from a GGUF
# file: both written by atomic rename) live in the first process's scratch dir, so the workers compile once.
_SHARED = os.environ.setdefault("LADDER_EDU_TESTS_SHARED", os.path.join(_SCRATCH, "shared"))
for _var in ("HOME", "TMPDIR", "MPLCONFIGDIR", "JUPYTER_RUNTIME_DIR", "IPYTHONDIR", "HF_HOME",
             "TORCHINDUCTOR_CACHE_DIR", "XDG_CACHE_HOME"):
    shared = _var in ("TORCHINDUCTOR_CACHE_DIR", "XDG_CACHE_HOME")
    os.environ[_var] = os.path.join(_SHARED if shared else _SCRATCH, _var.lower())
    os.makedirs(os.environ[_var], exist_ok=True)
tempfile.tempdir = None                    # re-read TMPDIR
os.environ["OMP_NUM_THREADS"] = "1"
os.environ["MPLBACKEND"] = "Agg"
os.environ["HF_HUB_OFFLINE"] = "1"          # checkpoints come from installed packages, never from a hub
os.environ["LADDER_EDU_QUICK"] = "1"       # notebooks run their quick mode under pytest


atexit.register(shutil.rmtree, _SCRATCH, ignore_errors=True)     # the controller's too (it runs no fixtures)
