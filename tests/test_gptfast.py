"""gpt-fast's shard, made as its tp.py makes it, has this package's shard's shapes (so their steps compare).

gpt-fast is never committed: these tests run where a snapshot is at third_party/gpt-fast (or $LADDER_EDU_GPT_FAST),
as on the GPU machine of docs/gpu/run.sh, and are skipped, with the reason, elsewhere."""
import os

import pytest
import torch

from ladder_edu.perf.measure import gptfast
from ladder_edu.perf.measure.gpu_terms import shard_model

ROOT = os.environ.get("LADDER_EDU_GPT_FAST",
                      os.path.join(os.path.dirname(__file__), "..", "third_party", "gpt-fast"))
needs = pytest.mark.skipif(not os.path.isfile(os.path.join(ROOT, "model.py")),
                           reason="no gpt-fast snapshot at third_party/gpt-fast (docs/gpu/run.sh fetches one)")


def test_a_directory_without_gpt_fast_is_named_in_the_error(tmp_path):
    with pytest.raises(ValueError, match="holds no gpt-fast model.py"):
        gptfast.load_model_module(str(tmp_path))


@needs
@pytest.mark.parametrize("tp", [2, 8])
def test_gpt_fast_shard_has_the_packages_shard_shapes(tp):
    gf = gptfast.load_model_module(ROOT)
    theirs = gptfast.shard(gf, "llama-3-8b", tp, 1, "meta")
    ours = shard_model("llama-3-8b", tp, 1, "meta")
    count = lambda m: sum(p.numel() for n, p in m.named_parameters() if "layers." in n and not n.endswith("norm.weight"))
    assert count(theirs) == count(ours)
    a = theirs.layers[0].attention
    assert (a.n_head, a.n_local_heads, a.head_dim) == (32 // tp, max(8 // tp, 1), 128)


@needs
def test_gpt_fast_step_runs_and_gives_a_time_per_layer():
    rows = gptfast.gpt_fast_steps(ROOT, "stories15M", [(2, 1, 1), (2, 1, 3)], cache=64, device="cpu",
                                  dtype=torch.float32)
    assert all("error" not in r for r in rows), rows
    assert all(r["pipelined_us"] > 0 for r in rows)
    (pl,) = gptfast.per_layer(rows)                  # on a CPU the difference of two layers is noise: shape only
    assert (pl["tp"], pl["batch"]) == (2, 1) and set(pl) == {"tp", "batch", "per_layer_us", "rest_us"}
