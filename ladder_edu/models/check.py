"""Correct before fast: does the model on N ranks compute what it computes on one device?

The same full weights are sharded onto N ranks (``parallel.shard_state_dict``) and also run whole on one device;
the check compares the logits of a prompt and the tokens of greedy generation.

Tolerance (float32): TP changes only the *order of additions*: each row-parallel matmul sums its inner dimension
in n partial sums that the all-reduce then adds. Rounding differences are then a few ulps of the values summed,
about 1e-7 relative in float32, so logits of size ~1 differ by ~1e-6 (measured: 2e-7 to 2e-6 on the presets). The
default tolerance 1e-4 leaves a 50x margin, yet a real dataflow error (a module reading the wrong residual stream,
a missed all-reduce) moves the logits by ~1e-1 (ladder vs standard on the same weights: 0.12 on ``tiny``).
In bfloat16 use ~5e-2: its 8-bit mantissa rounds each stored activation by up to 4e-3 relative.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import torch

from ..tp import launch
from .config import ModelConfig
from .generate import generate
from .build import build_model, init_weights
from .model import DTYPES
from .spec import RunSpec
from .variants import example_tokens
from ..tp.parallel import TPGroup

DEFAULT_TOL = {"float32": 1e-4, "bfloat16": 5e-2, "float16": 1e-2}


def tp_check_worker(spec: RunSpec, with_reference: bool = True) -> dict:
    """Runs on every rank: this rank's logits for a ``spec.context``-token prompt and ``spec.steps`` greedy tokens;
    rank 0 also runs the single-device model. ``spec.compile_mode``: the TP model decodes compiled
    (``compiled.py``); the single-device reference stays eager."""
    cfg, dtype = spec.cfg, spec.dtype
    compile = True if spec.compile_mode == "auto" else (spec.compile_mode or False)
    tp = TPGroup.from_dist()
    device = launch.current_device()
    full = init_weights(cfg, spec.seed)
    tokens = example_tokens(cfg, spec.batch, spec.context)
    out = {}
    runs = [("tp", tp)] + ([("ref", TPGroup.single())] if with_reference and tp.rank == 0 else [])
    for key, group in runs:
        model = build_model(cfg, full, group, DTYPES[dtype], device)
        with torch.no_grad():
            out[f"{key}_logits"] = model(tokens.to(device)).float().cpu()
        out[f"{key}_tokens"] = generate(model, tokens, spec.steps, compile=compile if key == "tp" else False).cpu()
        del model
    return out


@dataclass
class CheckResult:
    arch: str
    ladder_layers: int | tuple
    tp: int
    preset: str
    dtype: str
    max_abs_diff: float
    ranks_agree: bool
    tokens_equal: bool
    tolerance: float
    passed: bool
    tp_tokens: list
    ref_tokens: list
    compiled: bool = False          # the ranks decoded with torch.compile (compiled.py)

    def to_dict(self) -> dict:
        return asdict(self)

    def summary(self) -> str:
        k = self.ladder_layers
        name = self.arch + ((f" (layers {','.join(map(str, k))} ladder)" if isinstance(k, (tuple, list))
                             else f" (last {k} layers ladder)") if k else "")
        name += ", compiled decode" if self.compiled else ""
        verdict = "PASS" if self.passed else "FAIL"
        return (f"{verdict}  {name:<34} TP={self.tp} vs 1 device  max|logit diff| = {self.max_abs_diff:.2e} "
                f"(tol {self.tolerance:.0e})  greedy tokens equal: {self.tokens_equal}")


def compare(cfg: ModelConfig, tp: int, results: list[dict], dtype: str = "float32",
            tolerance: float | None = None) -> CheckResult:
    """Turn the per-rank outputs of :func:`tp_check_worker` into a verdict."""
    tol = DEFAULT_TOL[dtype] if tolerance is None else tolerance
    ref_logits, ref_tokens = results[0]["ref_logits"], results[0]["ref_tokens"]
    diff = max((r["tp_logits"] - ref_logits).abs().max().item() for r in results)
    ranks_agree = all(torch.equal(r["tp_tokens"], results[0]["tp_tokens"]) for r in results)
    tokens_equal = ranks_agree and torch.equal(results[0]["tp_tokens"], ref_tokens)
    return CheckResult(cfg.arch, cfg.ladder_layers, tp, cfg.name, dtype, diff, ranks_agree, tokens_equal, tol,
                       bool(diff <= tol and tokens_equal), results[0]["tp_tokens"].tolist(), ref_tokens.tolist())


def check(cfg: ModelConfig, tp: int, seed: int = 0, batch: int = 2, prompt_len: int = 16, new_tokens: int = 8,
          dtype: str = "float32", tolerance: float | None = None, compile: bool | str = False,
          options: launch.LaunchOptions | None = None) -> CheckResult:
    """Run ``cfg`` on ``tp`` ranks and on one device with the same weights and prompt; compare.
    ``compile``: the ranks decode compiled (CUDA graphs on GPUs), checked against eager single-device tokens."""
    if cfg.comm != "all_reduce":
        raise ValueError("comm='skip' (the upper bound) is not a valid model and is never checked for correctness")
    spec = RunSpec(cfg, tp, batch=batch, context=prompt_len, steps=new_tokens, seed=seed, dtype=dtype,
                   compile_mode=("auto" if compile is True else compile) or None)
    options = options or launch.LaunchOptions()
    if compile:
        options = options.replace(timeout_s=max(options.timeout_s, 600.0))
    results = launch.run(tp_check_worker, tp, spec, options=options)
    res = compare(cfg, tp, results, dtype, tolerance)
    res.compiled = bool(compile)
    return res
