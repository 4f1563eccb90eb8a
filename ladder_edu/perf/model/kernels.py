"""How many kernels a decode step launches, counted from this package's own model code.

``kernel_counts(arch)`` runs one static-shape decode step (the path ``torch.compile``/CUDA graphs use, see
``models/compiled.py``) of a tiny model of that architecture under a ``TorchDispatchMode`` and records every aten
op with the module it belongs to. It then groups them as inductor would launch them:

* matmuls (``mm``, ``addmm``, ``bmm``) are one kernel each (cuBLAS / Triton templates), and sibling projections
  of the same input are one GEMM, as gpt-fast stores them (``wqkv`` = q, k, v; ``w1`` = gate and up);
* scaled-dot-product attention is three (q k^T, masked softmax, @ v: the math backend gpt-fast runs);
* in-place cache writes (``index_copy_``) are one kernel each;
* every run of pointwise/reduction ops between those fuses into one kernel (inductor's fusion), so the residual
  add before a norm, and the norm, are one kernel; views cost nothing.

A communicating module adds one copy kernel (a functional all-reduce copies its input into the collective's
buffer). Outside the model, gpt-fast's decode step (``benchmark.py`` of ladder-residual-inference) samples on the
logits (``STEP_KERNELS``: divide by temperature, top-k, softmax, exponential noise, argmax) and updates its position
and token buffers outside the graph (``OUTSIDE_GRAPH``: 3 small kernels).
"""
from __future__ import annotations

from collections import Counter
from functools import lru_cache

VIEWS = {"t", "view", "_unsafe_view", "transpose", "unsqueeze", "expand", "split", "permute", "select", "slice",
         "alias", "detach", "_reshape_alias", "reshape", "squeeze", "as_strided", "split_with_sizes"}
MATMULS = {"mm", "addmm", "bmm", "matmul", "baddbmm"}
SCATTERS = {"index_copy_", "index_copy", "index_put_", "index_put"}
CHECKS = {"_local_scalar_dense", "max", "min", "aminmax"}   # value checks: skipped under torch.compile
STEP_KERNELS = 5
OUTSIDE_GRAPH = 3


def _trace(arch: str) -> list[tuple[str, str]]:
    """[(module, aten op)] of one static-shape decode step of a 2-layer tiny model of ``arch``."""
    import torch
    from torch.utils._python_dispatch import TorchDispatchMode

    from ...models.config import get_config
    from ...models.model import Transformer

    class Recorder(TorchDispatchMode):
        def __init__(self):
            super().__init__()
            self.ops, self.where, self.keep = [], "embed", []

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            if func.namespace != "aten":             # profiler annotations and the like launch no kernel
                return func(*args, **(kwargs or {}))
            name = func.overloadpacket.__name__
            if name in MATMULS:                      # remember which activation a projection reads
                x = args[1] if name in ("addmm", "baddbmm") else args[0]
                self.keep.append(x)                  # alive to the end: no later tensor can reuse its address
                name = f"{name}@{x.data_ptr()}"
            self.ops.append((self.where, name))
            return func(*args, **(kwargs or {}))

    model = Transformer(get_config("tiny", arch=arch, n_layers=2, comm="skip"))
    model.setup_cache(1, 32)
    rec = Recorder()
    for i, layer in enumerate(model.layers):
        first = "attn+mlp" if arch == "parallel" else "attn"
        layer.input_layernorm.register_forward_pre_hook(lambda *a, i=i, f=first: setattr(rec, "where", f"L{i}.{f}"))
        if arch != "parallel":
            layer.post_attention_layernorm.register_forward_pre_hook(
                lambda *a, i=i: setattr(rec, "where", f"L{i}.mlp"))
    model.norm.register_forward_pre_hook(lambda *a: setattr(rec, "where", "head"))
    with torch.no_grad(), rec:
        model(torch.zeros(1, 1, dtype=torch.long), torch.tensor([5]))
    ops = [(w, op) for w, op in rec.ops if op not in VIEWS and not (w == "embed" and op in CHECKS)]
    out, read = [], set()
    for where, op in ops:                        # sibling projections (a module's matmuls of one input): one GEMM
        name, _, reads = op.partition("@")
        if name in MATMULS and (where, reads) in read:
            continue
        read.add((where, reads))
        out.append((where, name))
    return out


def group_kernels(ops: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """[(module, kind)] with kind matmul / attention / scatter / pointwise, fused as the module docstring says.
    A fused pointwise kernel belongs to the module of its last op (the add before a norm joins the norm)."""
    kernels, run = [], None
    for where, op in ops:
        if op in MATMULS or "scaled_dot_product" in op or op in SCATTERS:
            if run:
                kernels.append((run, "pointwise"))
                run = None
            kind = "matmul" if op in MATMULS else "attention" if "scaled_dot_product" in op else "scatter"
            kernels += [(where, kind)] * (3 if kind == "attention" else 1)
        else:
            run = where
    if run:
        kernels.append((run, "pointwise"))
    return kernels


@lru_cache(maxsize=None)
def kernel_counts(arch: str) -> dict[str, Counter]:
    """{"attn"|"mlp"|"attn+mlp"|"head"|"embed": Counter(kind -> kernels)} for one layer's modules (layer 1, which
    has a predecessor, so its leading residual add is counted as it runs in every layer but the first)."""
    out: dict[str, Counter] = {}
    for where, kind in group_kernels(_trace(arch)):
        if where.startswith("L0."):
            continue
        key = where.split(".", 1)[1] if where.startswith("L1.") else where
        out.setdefault(key, Counter())[kind] += 1
    return out
