"""Communication: start an all-reduce now, wait for it later.

Every TP module ends with a partial sum y_r on each rank; the true output is AllReduce(y_r) = sum_r y_r. Here an
all-reduce is always *started* asynchronously and returns a :class:`Pending` contribution: the tensor plus the
handle to wait on. The model's layer loop decides when to wait, and that one decision is what separates the
architectures (``model.py``):

* standard waits before the very next module runs, so the all-reduce blocks it;
* ladder waits one module later, so module i's all-reduce runs while module i+1 computes.

Four ways to reduce:

* eager: ``dist.all_reduce(t, async_op=True)`` returns a work handle (the gpt-fast/ladder code does the same);
* under ``torch.compile``: functional collectives (``torch.distributed._functional_collectives.all_reduce``):
  the compiler sees the collective and its wait as separate graph nodes; ``Pending.wait(after=...)`` adds the
  fence that stops inductor's fusion from pulling a wait forward (``ordered_after``, ``compiled.py``);
* ``comm="skip"``: no reduction at all (the upper-bound speed ceiling; results are wrong by design);
* an emulated rank (``emulate.py``): a wait of the duration the interconnect model predicts (a deadline the
  calling thread waits for on a CPU, a spin kernel on a side stream on CUDA), with no data exchanged (timing only).
"""
from __future__ import annotations

import contextlib

import torch
import torch.distributed as dist
import torch.distributed._functional_collectives as funcol


class Pending:
    """A module's output whose all-reduce may still be in flight. ``wait()`` returns the reduced tensor."""

    __slots__ = ("tensor", "work", "name")

    def __init__(self, tensor: torch.Tensor, work=None, name: str = ""):
        self.tensor, self.work, self.name = tensor, work, name

    def wait(self, after: torch.Tensor | None = None) -> torch.Tensor:
        """The reduced tensor. ``after``: under torch.compile, a tensor the result must not be used before
        (see :func:`ordered_after`); eager code runs in program order and ignores it."""
        if self.work is not None:
            with region(f"{self.name}:wait"):
                self.work.wait()
            self.work = None
        if after is not None and FENCES["on"] and torch.compiler.is_compiling():
            return ordered_after(self.tensor, after)
        return self.tensor


FENCES = {"on": True}     # CompiledDecode(fence=False) turns ordered_after off, to show why it is there


@contextlib.contextmanager
def fences(on: bool):
    """Compile with (True) or without (False) the ordered_after fences inside this block."""
    before, FENCES["on"] = FENCES["on"], on
    try:
        yield
    finally:
        FENCES["on"] = before


_LIB = torch.library.Library("ladder_edu", "DEF")        # a plain operator: cheaper to call than custom_op
_LIB.define("ordered_after(Tensor x, Tensor anchor) -> Tensor")
_LIB.impl("ordered_after", lambda x, anchor: x.clone(), "CompositeExplicitAutograd")
torch.library.register_fake("ladder_edu::ordered_after", lambda x, anchor: torch.empty_like(x), lib=_LIB)


def ordered_after(x: torch.Tensor, anchor: torch.Tensor) -> torch.Tensor:
    """A copy of ``x`` that the compiler can compute only once ``anchor`` exists: a scheduling fence.

    Why it is needed: tracing a functional all-reduce puts its wait right after it, and inductor fuses pointwise
    work freely. For ladder it fused "stream + MLP_0's output" (needed by MLP_1) into the kernel that prepares
    Attn_1's input, so MLP_0's all-reduce had to finish *before* Attn_1: the overlap was gone (``compiled.py``
    shows the schedule). Making the reduced tensor depend on Attn_1's own output (the anchor) keeps that add, and
    the wait, after Attn_1, where the eager code has them. An opaque operator (``torch.library``; inductor does not
    fuse or simplify it) does it; an arithmetic fence such as x + 0 * anchor was simplified away or fused around
    (tried). Cost: a copy of a [batch, tokens, dim] activation and one operator call per ladder module (nothing of
    the Python call remains when CUDA graphs replay the step).
    """
    return torch.ops.ladder_edu.ordered_after(x, anchor)


def all_reduce_async(t: torch.Tensor, tp, comm: str = "all_reduce", name: str = "") -> Pending:
    """Start sum-all-reducing ``t`` over the TP group and return at once (``tp`` is a :class:`TPGroup`).

    ``name`` labels the trace regions: ``{name}:all_reduce`` (starting it) and ``{name}:wait`` (waiting for it).
    """
    if tp.size == 1 or comm == "skip":
        return Pending(t, None, name)
    if tp.emulated:                                  # emulate.ModeledGroup: a wait of the modeled duration
        with region(f"{name}:all_reduce"):
            return Pending(t, tp.group.all_reduce(t), name)
    if torch.compiler.is_compiling():
        return Pending(funcol.all_reduce(t, "sum", tp.group if tp.group is not None else dist.group.WORLD), None, name)
    with region(f"{name}:all_reduce"):
        work = dist.all_reduce(t, op=dist.ReduceOp.SUM, group=tp.group, async_op=True)
    return Pending(t, work, name)


def _nvtx_available() -> bool:
    return torch.cuda.is_available() and hasattr(torch.cuda, "nvtx")


_NVTX = None


def _profiling() -> bool:
    """True while a torch.profiler session records (regions cost a few microseconds, so skip them otherwise)."""
    return torch.autograd.profiler._is_profiler_enabled


@contextlib.contextmanager
def region(name: str):
    """Name a region for torch.profiler traces (and for Nsight Systems as an NVTX range on CUDA builds).

    ``torch.cuda.nvtx`` raises on CPU-only builds, so it is used only when CUDA is present.
    Under ``torch.compile`` regions are skipped: the compiler does not trace profiler annotations.
    """
    global _NVTX
    if _NVTX is None:
        _NVTX = _nvtx_available()
    if torch.compiler.is_compiling() or not (_profiling() or _NVTX):
        yield
        return
    with torch.profiler.record_function(name):
        if _NVTX:
            torch.cuda.nvtx.range_push(name)
            try:
                yield
            finally:
                torch.cuda.nvtx.range_pop()
        else:
            yield
