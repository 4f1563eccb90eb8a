"""What the performance model is asked about: one deployment, as one checked value.

A ``Deployment`` is a model (``cfg``) served on ``hw`` at TP ``tp`` with ``batch`` sequences, the TP group spread
over ``nodes`` nodes, the hybrid's ladder layers (``ladder_layers``: None for all of a ladder model's layers, k for
the top k, or a set of indices), how a parallel block is built (``parallel_block``, ``PARALLEL_BLOCKS``), and the
implementation of an all-reduce's time (``allreduce``): a function
``(hw, n, nbytes, nodes) -> (seconds, algorithm)``. The default is NCCL's own tuning model
(``nccl.allreduce_time``); ``ALLREDUCE`` names the implementations, so that another (a measured table, a
different library's model) is passed in without touching the model, as HolisticTraceAnalysis passes a strategy.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Callable

from ...models.config import ModelConfig
from .hardware import Hardware
from .allreduce import IMPLEMENTATIONS
from .nccl import allreduce_time

AllReduce = Callable[[Hardware, int, float, int], tuple[float, str]]
ALLREDUCE: dict[str, AllReduce] = dict(IMPLEMENTATIONS)
"""The all-reduce implementations a deployment can use, by name (``allreduce.py``: NCCL, one-shot, two-shot, NVLS)."""


PARALLEL_BLOCKS = ("package", "authors")
"""How a parallel block is built: as this package builds it (``models/model.py``: a norm and the fused q/k/v
projection for attention, a norm and the fused gate/up projection for the MLP), or as the Ladder authors
benchmarked it (``gpt_parallel_TP.py``: one norm, one matmul for q/k/v/gate/up together): one kernel of each kind
fewer per layer."""


def check_nodes(hw: Hardware, tp: int, nodes: int) -> None:
    """Raise a ValueError unless ``tp`` ranks fit on ``nodes`` nodes of ``hw``."""
    if nodes < 1 or tp % nodes:
        raise ValueError(f"--nodes {nodes} must divide TP={tp}; valid: "
                         f"{', '.join(str(k) for k in range(1, tp + 1) if tp % k == 0)}")
    if tp // nodes > hw.gpus_per_node:
        raise ValueError(f"TP={tp} on {nodes} node(s) needs {tp // nodes} GPUs per node, but a {hw.name} node has "
                         f"{hw.gpus_per_node}; use --nodes {-(-tp // hw.gpus_per_node)} or more")
    if nodes > 1 and hw.inter is None:
        raise ValueError(f"{hw.name} has no network between nodes; valid: --nodes 1")


@dataclass(frozen=True)
class Deployment:
    cfg: ModelConfig
    hw: Hardware
    tp: int
    batch: int = 1
    nodes: int = 1
    ladder_layers: int | tuple[int, ...] | None = None
    allreduce: AllReduce = allreduce_time
    parallel_block: str = "package"     # "package": two norms, four matmuls; "authors": one norm, q/k/v/gate/up fused

    def __post_init__(self):
        self.cfg.check_tp(self.tp)
        check_nodes(self.hw, self.tp, self.nodes)
        if self.batch < 1:
            raise ValueError(f"batch must be >= 1, got {self.batch}")
        if self.parallel_block not in PARALLEL_BLOCKS:
            raise ValueError(f"parallel_block {self.parallel_block!r}; valid choices: {', '.join(PARALLEL_BLOCKS)}")
        if isinstance(self.allreduce, str):
            if self.allreduce not in ALLREDUCE:
                raise ValueError(f"unknown all-reduce implementation {self.allreduce!r}; valid choices: "
                                 f"{', '.join(ALLREDUCE)}")
            object.__setattr__(self, "allreduce", ALLREDUCE[self.allreduce])

    def with_(self, **changes) -> "Deployment":
        """This deployment with some fields changed (checked again)."""
        return dataclasses.replace(self, **changes)

    def allreduce_time(self, nbytes: float) -> tuple[float, str]:
        """(seconds, algorithm) of one all-reduce of ``nbytes`` over this deployment's TP group."""
        return self.allreduce(self.hw, self.tp, nbytes, self.nodes)
