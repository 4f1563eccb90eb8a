"""One visual language for every figure of the course and the command line: one colour per thing drawn.

Modules: attention blue, MLP green, the parallel block (attention + MLP in one module) purple, the LM head brown.
Communication red; waiting for an all-reduce grey; the main thread starting an all-reduce (gloo enqueues it)
yellow. Variants have colours of their own, and a step's breakdown reuses the module and communication colours
for the parts that belong to them.
"""
from ..models.registry import VARIANTS as REGISTRY

ATTN, MLP, PARALLEL, LM_HEAD = "#4C72B0", "#55A868", REGISTRY["parallel"].color, "#937860"
COMM, WAIT, START, HIDDEN = "#C44E52", "#BBBBBB", "#E5AE38", "#EEAAAA"

MODULES = {"attn": ATTN, "mlp": MLP, "attn+mlp": PARALLEL, "lm_head": LM_HEAD, "conj": LM_HEAD, "compute": ATTN,
           "allreduce": COMM, "wait": WAIT, "start": START}
"""Timeline and schedule colours, by interval kind."""
LABELS = {"attn": "attention", "mlp": "MLP", "attn+mlp": "parallel block (attention + MLP)", "lm_head": "LM head",
          "conj": "Kraken's joining linear (conj)", "compute": "other compute", "allreduce": "all-reduce",
          "wait": "waiting for an all-reduce", "start": "starting an all-reduce"}
"""What a legend calls each interval kind."""

VARIANTS = {name: v.color for name, v in REGISTRY.items()}
"""Bar and line colours, by variant (``models.registry``: the parallel block's is PARALLEL, its module's colour)."""
MARKERS = {name: v.marker for name, v in REGISTRY.items()}
"""Point markers, by variant."""

BREAKDOWN = {"weights": "#A1C9F4", "attention": ATTN, "small kernels": "#D0BBFF", "all-reduce calls": "#FFB482",
             "LM head + sampling": LM_HEAD,
             "overlap slow-down": "#DA8BC3", "exposed communication": COMM}
"""A decode step taken apart (``perf.model.explain.breakdown``); hidden communication is drawn HIDDEN, hatched."""

PHASES = {"prefill": "#A1C9F4", "decode": "#1F4E79"}
"""Prefill and decode, when they are compared."""

RANKS = ["#4C72B0", "#DD8452", "#55A868", "#C44E52", "#8172B3", "#937860", "#DA8BC3", "#8C8C8C"]
"""Which rank owns a block, in the sharding diagrams."""
