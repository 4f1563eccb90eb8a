"""How a distributed job fails, as exceptions that say which rank and what to look at."""
from __future__ import annotations

import os


class LaunchError(RuntimeError):
    """The job could not start (bad backend, port, function...)."""


class RankError(RuntimeError):
    """A rank failed. ``rank`` names it, ``remote_traceback`` is its traceback, and ``exit_code`` is its process's
    exit status when it died without reporting (negative: killed by that signal; None: it raised)."""

    def __init__(self, message: str, rank: int, remote_traceback: str = "", exit_code: int | None = None):
        super().__init__(message)
        self.rank, self.remote_traceback, self.exit_code = rank, remote_traceback, exit_code


class CollectiveTimeout(RankError):
    """A collective (or the whole job) did not finish in time: typically one rank skipped an all-reduce.
    ``whole_job``: the job's ``deadline_s`` passed (a rank stuck where no collective timeout reaches it), rather
    than one collective's timeout."""

    def __init__(self, message: str, rank: int, remote_traceback: str = "", whole_job: bool = False):
        super().__init__(message, rank, remote_traceback)
        self.whole_job = whole_job


LOST_PEER = ("connection reset by peer", "connection closed by peer", "broken pipe", "socket closed",
             "remote process exited", "ncclremoteerror", "connection refused")


def looks_like_lost_peer(e: BaseException) -> bool:
    return any(s in str(e).lower() for s in LOST_PEER)


class PeerLost(RankError):
    """Under torchrun: a collective failed because another rank (or a whole node) went away."""

    def __init__(self, cause: BaseException):
        rank, world = os.environ.get("RANK", "?"), os.environ.get("WORLD_SIZE", "?")
        node = os.environ.get("GROUP_RANK", "?")
        first = str(cause).strip().splitlines()[0][:160] if str(cause).strip() else type(cause).__name__
        super().__init__(f"rank {rank} of {world} (node {node}) lost contact with another rank during a "
                         f"collective ({first}): a rank or node exited or was killed. Look at the other nodes' "
                         f"output for the first error (out of memory, Ctrl-C, a crash), fix it and relaunch.",
                         int(rank) if rank.isdigit() else 0)
