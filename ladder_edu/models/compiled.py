"""Compiled decode: ``torch.compile`` on a static-shape KV cache, replayed as a CUDA graph on a GPU.

The Ladder paper timed decode with gpt-fast, which compiles each decode step with
``torch.compile(mode="reduce-overhead")``: the step is recorded once as a CUDA graph and then replayed, so the CPU
no longer launches the ~10 kernels of every module one by one. At batch 1 that launch cost can be as long as the
kernels themselves, and it hides what ladder changes (the wait for the all-reduce). Two things must hold:

1. **Static shapes.** A CUDA graph replays fixed kernels on fixed buffers. The eager decode attends to
   ``cache[:, :, :p+1]``, a length that grows by one every step. Here a step attends to the *whole* cache and masks
   every slot s > p (gpt-fast's layout), and the position p is a tensor, not a Python int: an int would be baked
   into the graph and every new position would recompile. (``layers.Attention`` takes both; ``start`` an int is the
   eager path, a tensor of positions the static one.)
2. **Collectives the compiler keeps apart.** Under compile, ``comm.all_reduce_async`` issues functional
   collectives: the all-reduce and its wait are separate graph nodes. That alone is not enough. Tracing puts each
   wait right after its all-reduce, and inductor fuses "stream + MLP_0's output" (needed by MLP_1) into the kernel
   that prepares Attn_1's input, so MLP_0's all-reduce must finish before Attn_1 starts. Measured with
   :func:`overlapped_matmuls` (matmuls issued while each all-reduce is in flight) on the ``tiny`` ladder at TP=2:
   ``[2, 0, 0, 0, 2, 0, 2, 0]`` -- most of the overlap gone. Inductor's ``sink_waits`` pass (on by default here;
   the ladder authors' benchmark turns on the same machinery) does not change that: fusion has already tied the
   add to the earlier kernel. ``comm.ordered_after`` does: a fence that makes the reduced tensor depend on the
   next module's output, so the add and the wait stay after it, where the eager code has them. With it:
   ``[2, 2, 2, 2, 2, 2, 2, 0]``, every ladder all-reduce but the last under a whole module's matmuls, and no
   standard or parallel one (``[0, 0, ...]``) -- the tests check exactly that in the compiled code.

On a CPU the same step compiles to inductor's C++ kernels (no CUDA graphs); the tests check there that compiled
logits equal eager ones on gloo ranks, and that compiled greedy tokens on N ranks equal the eager single-device
model's (``ladder-edu check --compile``, which runs the same check on GPUs with NCCL and CUDA graphs). An emulated
rank (``emulate.py``) cannot be compiled: its modeled waits are Python threads and CUDA sleeps that the compiler
does not trace.
"""
from __future__ import annotations

import re

import torch

from ..tp.comm import fences

MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")


def default_mode(device: torch.device) -> str:
    """``reduce-overhead`` (CUDA graphs) on a GPU, as gpt-fast; plain ``default`` on a CPU (CUDA graphs need CUDA)."""
    return "reduce-overhead" if device.type == "cuda" else "default"


def cpp_compiler() -> str | None:
    """The C++ compiler inductor would use on a CPU, or None if there is none."""
    import os
    import shutil
    found = (shutil.which(name) for name in (os.environ.get("CXX"), "g++", "clang++", "c++") if name)
    return next((path for path in found if path), None)


def positions(start: int, length: int, device) -> torch.Tensor:
    """The positions start .. start+length-1 as a torch.long tensor: the static path's ``start``."""
    return torch.arange(start, start + length, dtype=torch.long, device=device)


def compile_options(mode: str, sink_waits: bool = True) -> dict:
    """Inductor options for ``mode``, plus inductor's ``sink_waits`` pass (each wait moved down to the first use
    of its result), which the ladder authors' benchmark turns on (``reorder_for_compute_comm_overlap = True``,
    the Ladder authors' gpt-fast code; see docs/references.md). Measured here it does not keep ladder's overlap on
    its own: ``comm.ordered_after`` does
    (module docstring).
    """
    import torch._inductor
    options = dict(torch._inductor.list_mode_options(mode))
    if sink_waits:
        options.update(reorder_for_compute_comm_overlap=True, reorder_for_compute_comm_overlap_passes=["sink_waits"])
    return options


class CompiledDecode:
    """``step(tokens [B, 1], pos)`` -> logits [B, 1, vocab], a compiled decode step of ``model`` at position pos.

    ``fence`` (``comm.ordered_after``) keeps ladder's overlap; ``sink_waits`` (inductor's pass, as in the authors'
    setup) made no difference in our measurements (module docstring); turn them off to see what the compiler does
    without them. The model must have a KV cache (``model.setup_cache``) filled up to ``pos`` (an eager prefill does
    that: both paths use the same cache buffers). The first call compiles (seconds to minutes); later calls at any
    position reuse the graph. With CUDA graphs the returned logits live in the graph's memory and are overwritten by
    the next step: clone them to keep them.
    """

    def __init__(self, model, mode: str | None = None, sink_waits: bool = True, fence: bool = True):
        device = model.embed_tokens.weight.device
        if model.tp.emulated:
            raise ValueError("an emulated rank (modeled communication) cannot be compiled: its waits are Python "
                             "threads and CUDA sleeps; drop --compile or --emulate-tp")
        mode = mode or default_mode(device)
        if mode not in MODES:
            raise ValueError(f"unknown torch.compile mode {mode!r}; valid choices: {', '.join(MODES)}")
        if mode == "reduce-overhead" and device.type != "cuda":
            raise ValueError("mode 'reduce-overhead' records CUDA graphs and needs a CUDA device; "
                             "on a CPU use mode 'default'")
        if model.first_cache() is None:
            raise ValueError("compiled decode needs a KV cache: call model.setup_cache(batch) first")
        if device.type == "cpu" and not cpp_compiler():
            raise ValueError("torch.compile on a CPU writes C++ kernels and needs a C++ compiler, and none was found "
                             "(tried $CXX, g++, clang++, c++): install one (apt install g++; conda install "
                             "cxx-compiler) or run eager (drop --compile)")
        self.model, self.mode, self.device, self.fence = model, mode, device, fence
        self._fn = torch.compile(model, fullgraph=True, dynamic=False, options=compile_options(mode, sink_waits))

    @torch.no_grad()
    def __call__(self, tokens: torch.Tensor, pos: int) -> torch.Tensor:
        if tokens.dim() != 2 or tokens.shape[1] != 1:
            raise ValueError(f"a decode step takes one token per sequence, shape [batch, 1]; got {tuple(tokens.shape)}")
        cache_len = self.model.first_cache().k.shape[2]
        if not 0 <= pos < cache_len:
            raise ValueError(f"position {pos} is outside the KV cache [0, {cache_len})")
        if self.mode == "reduce-overhead":
            torch.compiler.cudagraph_mark_step_begin()      # the previous step's outputs may be overwritten now
        with fences(self.fence):
            return self._fn(tokens, positions(pos, 1, self.device))


_AR = re.compile(r"_c10d_functional\.all_reduce_?\.default\(\s*(?:reinterpret_tensor\()?(buf\d+)")
_WAIT = re.compile(r"_c10d_functional\.wait_tensor\.default\(\s*(?:reinterpret_tensor\()?(buf\d+)")
_MATMUL = re.compile(r"^\s*extern_kernels\.(mm|addmm|bmm|baddbmm)\(|^\s*triton_tem\w*\.run\(")


def overlapped_matmuls(code: str) -> list[int]:
    """For each all-reduce in a compiled step's generated code, in order: how many matmuls are issued between
    starting it and waiting for it, i.e. how much compute it can hide behind.

    ``code`` is the wrapper inductor wrote (``torch._inductor.utils.run_and_get_code`` returns it); on a GPU the
    same lines launch CUDA kernels, on a CPU they run C++ kernels.
    """
    started: dict[str, int] = {}
    counts: list[int] = []
    for line in code.splitlines():
        if line.lstrip().startswith("#"):
            continue
        if m := _AR.search(line):
            started[m.group(1)] = len(counts)
            counts.append(0)
        elif m := _WAIT.search(line):
            started.pop(m.group(1), None)
        elif _MATMUL.search(line):
            for i in started.values():
                counts[i] += 1
    return counts


def compiled_code(step: CompiledDecode, tokens: torch.Tensor, pos: int) -> tuple[torch.Tensor, str]:
    """Run one compiled step and return (logits, the generated code of its graph). Compiles afresh."""
    from torch._inductor.utils import run_and_get_code
    torch._dynamo.reset()
    logits, codes = run_and_get_code(step, tokens, pos)
    return logits, codes[-1]


def overlap_worker(preset: str, variant: str, fence: bool = True, sink_waits: bool = True) -> list[int]:
    """On every rank (``launch.run``): compile one decode step of ``variant`` and return
    :func:`overlapped_matmuls` of its generated code (this rank's)."""

    from ..tp import launch
    from .variants import variant_model
    from .config import get_config
    from .build import init_weights
    from ..tp.parallel import TPGroup
    cfg = get_config(preset)
    tp = TPGroup.current()
    device = launch.current_device()
    model = variant_model(cfg, variant, tp, init_weights(cfg, 0), device=device)
    tokens = torch.zeros(1, 8, dtype=torch.long, device=device)
    with torch.no_grad():
        model.setup_cache(1, 16)
        model(tokens)
        _, code = compiled_code(CompiledDecode(model, sink_waits=sink_waits, fence=fence), tokens[:, -1:], 8)
    return overlapped_matmuls(code)
