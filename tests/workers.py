"""Functions the tests run on spawned ranks (they must be importable, so they live in a module)."""
import os
import time

import torch
import torch.distributed as dist


def rank_and_sum(x):
    t = torch.tensor([float(dist.get_rank() + 1)])
    dist.all_reduce(t)
    return {"rank": dist.get_rank(), "world": dist.get_world_size(), "sum": t.item(), "x": x,
            "threads": torch.get_num_threads()}


def raise_on_rank(bad_rank):
    if dist.get_rank() == bad_rank:
        raise ValueError(f"boom from rank {bad_rank}")
    t = torch.ones(1)
    dist.all_reduce(t)       # the healthy rank waits here for the dead one
    return "ok"


def skip_all_reduce_on_rank(bad_rank, then_exit=False):
    if dist.get_rank() != bad_rank:
        t = torch.ones(1)
        dist.all_reduce(t)   # never matched: the other rank skipped it
    elif not then_exit:
        time.sleep(60)       # still alive, busy elsewhere: the waiting rank's collective must time out
    return "done"


def die_on_rank(bad_rank):
    if dist.get_rank() == bad_rank:
        os._exit(7)
    time.sleep(30)
    return "ok"


def sleep_forever():
    time.sleep(3600)


def wrong_world_size():
    from ladder_edu import Transformer, TPGroup, get_config
    Transformer(get_config("tiny"), TPGroup(dist.get_rank(), 4, None))


def comm_priority_seen():
    import threading

    from ladder_edu.tp import launch
    return {"applied": launch.applied_comm_priority(), "main_policy": os.sched_getscheduler(0),
            "thread": threading.get_native_id()}


def plain_profiler_trace(path_prefix):
    """Plain torch.profiler code that knows nothing of ladder_edu: matmuls next to async all-reduces."""
    a, x = torch.randn(256, 256), torch.randn(64, 256)
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        for _ in range(4):
            y = x @ a
            work = dist.all_reduce(y, async_op=True)
            for _ in range(3):
                x = torch.tanh(x @ a)
            work.wait()
    path = f"{path_prefix}{dist.get_rank()}.json"
    prof.export_chrome_trace(path)
    return path


def iso_vs_prefill(preset, splits):
    """Logits and KV caches of an ordinary prefill and of ISO's chunked prefill, on this rank's shard."""
    from ladder_edu import Transformer, TPGroup, get_config, init_weights
    from ladder_edu.models.check import example_tokens
    from ladder_edu.models.iso import iso_prefill
    cfg = get_config(preset)
    tp = TPGroup.from_dist() if dist.is_initialized() else TPGroup.single()
    out = {}
    for name in ("plain", "iso"):
        model = Transformer.from_full_state_dict(cfg, init_weights(cfg, 2), tp)
        model.setup_cache(2, 64)
        tokens = example_tokens(cfg, 2, 40)
        with torch.no_grad():
            out[name] = model(tokens) if name == "plain" else iso_prefill(model, tokens, splits)
        caches = [(layer.self_attn.cache.k[:, :, :40].clone(), layer.self_attn.cache.v[:, :, :40].clone())
                  for layer in model.layers]
        out[name + "_cache"] = caches
    return out


def compiled_vs_eager(variant, steps=3):
    """Eager decode vs compiled decode of one variant on this rank, from the same prefill; and the compiled code's
    overlap (matmuls issued while each all-reduce is in flight)."""
    from ladder_edu import get_config, init_weights
    from ladder_edu.perf.measure.bench import variant_model
    from ladder_edu.models.compiled import CompiledDecode, compiled_code, overlapped_matmuls
    from ladder_edu.tp.parallel import TPGroup
    cfg = get_config("tiny")
    tp = TPGroup.from_dist() if dist.is_initialized() else TPGroup.single()
    model = variant_model(cfg, variant, tp, init_weights(cfg, 0))
    tokens = torch.randint(0, cfg.vocab_size, (2, 8 + steps), generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        model.setup_cache(2, 8 + steps)
        model(tokens[:, :8])
        eager = [model(tokens[:, 8 + i:9 + i], start=8 + i) for i in range(steps)]
        model.setup_cache(2, 8 + steps)
        model(tokens[:, :8])
        step = CompiledDecode(model)
        first, code = compiled_code(step, tokens[:, 8:9], 8)
        compiled = [first.clone()] + [step(tokens[:, 8 + i:9 + i], 8 + i).clone() for i in range(1, steps)]
    diff = max((a - b).abs().max().item() for a, b in zip(eager, compiled))
    return {"diff": diff, "overlap": overlapped_matmuls(code), "mode": step.mode}


def keywords_seen(**kwargs):
    """Returns the keywords it was called with (a worker keyword may share a name with a launcher option)."""
    return sorted(kwargs.items())
