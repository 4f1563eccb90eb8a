"""Regenerate the committed gloo trace fixture: python tests/data/make_fixtures.py (from the repository root).

It profiles two decode steps of the tiny ladder model on 2 gloo ranks with ladder_edu and keeps rank 0's trace,
gzipped. The tests check it against an independent brute-force computation, not against numbers from this run.
"""
import gzip
import shutil
import tempfile

from ladder_edu import get_config
from ladder_edu.profiling.trace import profile

if __name__ == "__main__":
    out = tempfile.mkdtemp()
    paths = profile(get_config("tiny"), ["ladder"], 2, "decode", out, steps=2, warmup=1, context=8)
    with open(paths["ladder"][0], "rb") as src, gzip.open("tests/data/gloo_ladder_tiny_rank0.json.gz", "wb") as dst:
        shutil.copyfileobj(src, dst)
    shutil.rmtree(out)
