"""A GPU trace of the graph-captured emulated rank: its compute stream and its (modeled) communication stream.

``profile_graphed`` captures one decode step of each variant (``graphed.capture_decode_step``), replays it under
``torch.profiler`` with CUDA activity, and writes each trace with the spin kernels that stand for the all-reduces
(``torch.cuda._sleep`` on the communication stream) renamed ``modeled:all_reduce``, so that
``profiling.overlap.analyze`` counts them as communication and ``teach.timeline.draw_timeline`` draws them on the
communication lane. Compute is measured (this GPU's kernels for rank 0's shard); communication is MODELED.

``python -m ladder_edu.teach.gpu --gpu h100-nvlink --out DIR`` (``docs/gpu/run.sh`` runs it) writes
``DIR/<variant>.gpu.trace.json.gz``, ``DIR/overlap.txt`` and ``DIR/timeline.png``.
"""
from __future__ import annotations

import gzip
import json
import os

import torch

from ...models.registry import BASELINE, LADDER
from ...models.spec import RunSpec
from ...profiling.trace import quiet_profiler_stderr
from ..model.hardware import Hardware
from .emulate import emulated_rank_model, variant_models
from .graphed import capture_decode_step

SPIN = "spin_kernel"           # the kernel torch.cuda._sleep launches


def relabel_spins(trace: dict) -> dict:
    """``trace`` with every spin kernel named ``modeled:all_reduce`` (the emulated rank's only spin kernels are the
    modeled all-reduces)."""
    events = [dict(e, name="modeled:all_reduce") if e.get("cat") == "kernel" and SPIN in e.get("name", "") else e
              for e in trace["traceEvents"]]
    return dict(trace, traceEvents=events)


def profile_graphed(spec: RunSpec, hw: Hardware, out_dir: str, replays: int = 1) -> dict[str, list[str]]:
    """Trace ``replays`` replays of each of ``spec.variants``' captured decode step; returns {variant: [path]}."""
    if not torch.cuda.is_available():
        raise RuntimeError("a GPU trace of the graph-captured rank needs a CUDA GPU; on a CPU profile the emulated "
                           "link (perf.measure.emulated_profile.profile_emulated)")
    cfg, variants = spec.cfg, list(spec.variants or (BASELINE, LADDER))
    base, group = emulated_rank_model(cfg, BASELINE, hw, spec.tp, "cuda", spec.dtype, spec.seed)
    dev = base.embed_tokens.weight.device
    os.makedirs(out_dir, exist_ok=True)
    out = {}
    prompt = torch.randint(0, cfg.vocab_size, (spec.batch, spec.context + 1), device=dev)
    with torch.no_grad():
        for v, m in variant_models(base, cfg, variants, spec.dtype, spec.batch, spec.context + 8).items():
            m(prompt[:, :spec.context], start=0)
            graph, _, _ = capture_decode_step(m, v, prompt, spec.context)
            graph.replay()
            torch.cuda.synchronize()
            raw = os.path.join(out_dir, f"{v}.raw.json")
            with quiet_profiler_stderr(), torch.profiler.profile(
                    activities=[torch.profiler.ProfilerActivity.CPU, torch.profiler.ProfilerActivity.CUDA]) as prof:
                for _ in range(replays):
                    graph.replay()
                torch.cuda.synchronize()
            prof.export_chrome_trace(raw)
            with open(raw) as f:
                trace = relabel_spins(json.load(f))
            os.remove(raw)
            path = os.path.join(out_dir, f"{v}.gpu.trace.json.gz")
            with gzip.open(path, "wt") as f:
                json.dump(trace, f)
            out[v] = [path]
            del graph
    return out
