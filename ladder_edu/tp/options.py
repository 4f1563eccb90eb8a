"""How the launcher starts ranks (``launch.run``'s ``options``), validated once, kept apart from a worker's own
arguments so that a worker keyword can never be taken by the launcher."""
from __future__ import annotations

import dataclasses
import os

from .errors import LaunchError

BACKENDS = ("gloo", "nccl")
COMM_PRIORITIES = ("auto", "normal", "realtime")
DEVICES = ("auto", "cpu")


def cpu_only() -> bool:
    """``LADDER_EDU_DEVICE=cpu``: every default is CPU ranks on gloo, GPUs or not (a class sharing a GPU node, a
    grader that must not touch the GPUs). Unset or ``auto``: GPUs when there are enough."""
    choice = os.environ.get("LADDER_EDU_DEVICE", "auto").strip().lower() or "auto"
    if choice not in DEVICES:
        raise LaunchError(f"LADDER_EDU_DEVICE={choice!r} is not a choice; valid: {', '.join(DEVICES)}")
    return choice == "cpu"


@dataclasses.dataclass(frozen=True)
class LaunchOptions:
    """How ranks are started, validated once.

    backend: "gloo" or "nccl" (None: NCCL if there is a GPU per rank, else gloo).
    timeout_s: how long one collective may wait before the rank fails (passed to init_process_group).
    deadline_s: the whole job is killed after this many seconds (None: no limit besides timeout_s).
    threads: intra-op threads per rank (1 by default: 2 threads per rank oversubscribe a 2-core CPU; None: leave
    torch's default).
    port: the rendezvous port on 127.0.0.1 (None: a free one, so several jobs can run on one machine at once).
    comm_priority: "realtime" gives gloo's communication threads a real-time scheduling class (Linux, root or
    CAP_SYS_NICE; see ``_realtime_comm_threads``), "normal" leaves them alone, "auto" (default) uses realtime where
    allowed. ``applied_comm_priority()`` tells a rank which one it got.
    """
    backend: str | None = None
    timeout_s: float = 60.0
    deadline_s: float | None = 900.0
    threads: int | None = 1
    port: int | None = None
    comm_priority: str = "auto"

    def __post_init__(self):
        if self.backend is not None and self.backend not in BACKENDS:
            raise LaunchError(f"unknown backend {self.backend!r}; valid choices: {', '.join(BACKENDS)}")
        if self.comm_priority not in COMM_PRIORITIES:
            raise LaunchError(f"unknown comm_priority {self.comm_priority!r}; valid choices: "
                              f"{', '.join(COMM_PRIORITIES)}")
        if not self.timeout_s > 0:
            raise LaunchError(f"timeout_s must be > 0 seconds, got {self.timeout_s}")
        if self.deadline_s is not None and not self.deadline_s > 0:
            raise LaunchError(f"deadline_s must be > 0 seconds or None, got {self.deadline_s}")
        if self.threads is not None and (not isinstance(self.threads, int) or self.threads < 1):
            raise LaunchError(f"threads must be an integer >= 1 or None, got {self.threads!r}")
        if self.port is not None and not (isinstance(self.port, int) and 1 <= self.port <= 65535):
            raise LaunchError(f"port must be an integer in [1, 65535] or None, got {self.port!r}")

    def replace(self, **changes) -> "LaunchOptions":
        return dataclasses.replace(self, **changes)
