"""Run a package function on N ranks of a real ``torch.distributed`` process group and collect each rank's result.

``run(fn, world_size, spec)`` spawns ``world_size`` processes (gloo on CPU, NCCL when there is a GPU per rank),
calls ``fn(spec)`` on each after ``init_process_group`` and returns ``[result_of_rank_0, result_of_rank_1, ...]``.
The package's workers take one frozen spec (``models.spec.RunSpec``); the launcher's own settings travel apart,
in :class:`LaunchOptions`, so that no keyword of a worker can be taken by the launcher.
Under ``torchrun`` the same call runs ``fn`` on *this* rank of the already-started job and all-gathers the results,
so one entry point serves a notebook, a script and a multi-node ``torchrun`` launch.

Failure is bounded: a rank that raises ends the job with :class:`RankError` naming the rank and carrying its
traceback; a collective that waits longer than ``timeout_s`` (for example because another rank skipped it) ends
with :class:`CollectiveTimeout`; the whole job is killed after ``deadline_s``. No process is left running.
"""
from __future__ import annotations

import datetime
import os
import pickle
import shutil
import socket
import sys
import tempfile
import time
import traceback

import torch
import torch.distributed as dist
import torch.multiprocessing as mp



from ..util.atomic import atomic_path
from .errors import CollectiveTimeout, LaunchError, PeerLost, RankError, looks_like_lost_peer
from .options import BACKENDS, COMM_PRIORITIES, LaunchOptions, cpu_only  # noqa: F401  (re-exported)


def under_torchrun() -> bool:
    """True when this process was started by torchrun / torch.distributed.elastic."""
    return "TORCHELASTIC_RUN_ID" in os.environ or ("RANK" in os.environ and "WORLD_SIZE" in os.environ
                                                   and "MASTER_ADDR" in os.environ)


def _gpus() -> int:
    return 0 if cpu_only() or not torch.cuda.is_available() else torch.cuda.device_count()


def default_backend(world_size: int = 1) -> str:
    """NCCL when every rank can have its own CUDA device (and ``LADDER_EDU_DEVICE`` is not ``cpu``), else gloo."""
    gpus = _gpus()
    return "nccl" if 0 < gpus and world_size <= gpus and dist.is_nccl_available() else "gloo"


def default_world_size() -> int:
    """Ranks a lesson uses by default: WORLD_SIZE under torchrun, every GPU if there are several (and
    ``LADDER_EDU_DEVICE`` is not ``cpu``), else 2 CPU ranks."""
    if under_torchrun():
        return int(os.environ["WORLD_SIZE"])
    n = _gpus()
    return n if n >= 2 else 2


def check_backend(backend: str, world_size: int) -> None:
    if backend not in BACKENDS:
        raise LaunchError(f"unknown backend {backend!r}; valid choices: {', '.join(BACKENDS)}")
    if backend == "gloo" and not dist.is_gloo_available():
        raise LaunchError("backend 'gloo' is not available in this torch build")
    if backend == "nccl":
        if not (dist.is_nccl_available() and torch.cuda.is_available()):
            raise LaunchError("backend 'nccl' is not available here (it needs a CUDA build of torch and a GPU); "
                              "valid choice on this machine: gloo")
        if torch.cuda.device_count() < world_size and not under_torchrun():
            raise LaunchError(f"backend 'nccl' needs one GPU per rank: {world_size} ranks but "
                              f"{torch.cuda.device_count()} GPU(s); use fewer ranks or backend='gloo'")


def free_port(port: int | None = None) -> int:
    """A TCP port on 127.0.0.1 that is free now (``port`` is checked if given, else the OS picks one)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind(("127.0.0.1", port or 0))
        except OSError as e:
            if port:
                raise LaunchError(f"port {port} on 127.0.0.1 is not free ({e.strerror}); "
                                  f"pass port=None to let the launcher pick a free one") from e
            raise LaunchError(f"no free TCP port on 127.0.0.1: {e}") from e
        return s.getsockname()[1]


def device_for_rank(backend: str, local_rank: int) -> torch.device:
    """CUDA device ``local_rank`` under NCCL, else the CPU."""
    if backend == "nccl":
        torch.cuda.set_device(local_rank % torch.cuda.device_count())
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def current_device() -> torch.device:
    """The device this rank should compute on (after ``run`` or torchrun set the process group up)."""
    if dist.is_initialized() and dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def applied_comm_priority() -> str:
    """The priority this rank's gloo threads got: "realtime" or "normal" (see ``run``'s comm_priority)."""
    return os.environ.get("LADDER_EDU_COMM_PRIORITY", "normal")


def _init_group(backend, timeout_s, comm_priority, **init_kwargs):
    """init_process_group, creating gloo's threads in a real-time class when asked (and allowed, for "auto")."""
    realtime = backend == "gloo" and comm_priority in ("auto", "realtime")
    if realtime:
        try:
            _realtime_comm_threads(True)
        except LaunchError:
            if comm_priority == "realtime":
                raise
            realtime = False
    dist.init_process_group(backend, timeout=datetime.timedelta(seconds=timeout_s), **init_kwargs)
    if realtime:
        _realtime_comm_threads(False)
    os.environ["LADDER_EDU_COMM_PRIORITY"] = "realtime" if realtime else "normal"


def _realtime_comm_threads(on: bool) -> None:
    """Make the threads this thread creates next (gloo's worker and socket threads) real-time (SCHED_RR), then call
    with on=False to put the calling (compute) thread back to normal. Linux, root or CAP_SYS_NICE only.

    Why: on a CPU, gloo communicates from its own threads. While every core runs compute, a woken communication
    thread can wait milliseconds for a core, so an "async" all-reduce barely progresses under compute. A real-time
    class lets it preempt compute at once: the CPU analogue of NCCL's high-priority CUDA streams.
    """
    try:
        if on:
            os.sched_setscheduler(0, os.SCHED_RR, os.sched_param(1))
        else:
            os.sched_setscheduler(0, os.SCHED_OTHER, os.sched_param(0))
    except (AttributeError, PermissionError, OSError) as e:
        raise LaunchError(f"comm_priority='realtime' needs Linux and root or CAP_SYS_NICE ({e}); "
                          f"valid choices here: 'normal'") from e


def _worker(rank: int, world_size: int, options: LaunchOptions, call: tuple, out_dir: str):
    """Body of one spawned rank: init the group, call fn, write {ok, result | error, traceback} to out_dir.
    ``options`` has the resolved backend and port; ``call`` is (fn, args, kwargs)."""
    fn, args, kwargs = call
    os.environ.setdefault("GLOO_SOCKET_IFNAME", "lo")
    if options.threads:
        torch.set_num_threads(options.threads)
    payload = {"rank": rank}
    try:
        _init_group(options.backend, options.timeout_s, options.comm_priority,
                    init_method=f"tcp://127.0.0.1:{options.port}", rank=rank, world_size=world_size)
        device_for_rank(options.backend, rank)
        payload.update(ok=True, result=fn(*args, **kwargs))
    except BaseException as e:  # noqa: BLE001 - everything a rank raises is reported to the parent
        payload.update(ok=False, error=f"{type(e).__name__}: {e}", traceback=traceback.format_exc(),
                       timeout=looks_like_timeout(e), time=time.time())
    with atomic_path(os.path.join(out_dir, f"rank{rank}.pt")) as tmp:    # the parent never reads half a file
        torch.save(payload, tmp)
    if payload["ok"] and dist.is_initialized():
        dist.destroy_process_group()
    sys.stdout.flush()
    os._exit(0 if payload["ok"] else 1)     # skip interpreter teardown that can block on a broken collective


def looks_like_timeout(e: BaseException) -> bool:
    """True if ``e`` reads as a collective that timed out."""
    text = f"{type(e).__name__} {e}".lower()
    return "timed out" in text or "timeout" in text


def _check_picklable(fn):
    main = sys.modules.get("__main__")
    if getattr(fn, "__module__", None) == "__main__" and not hasattr(main, "__file__"):
        raise LaunchError(f"{getattr(fn, '__name__', fn)!r} is defined in a notebook cell; spawned ranks cannot "
                          f"import it. Put the function in a module (ladder_edu has the workers the notebooks use)")
    try:
        pickle.dumps(fn)
    except Exception as e:
        raise LaunchError(f"cannot send {fn!r} to the ranks ({e}); use a module-level function, not a lambda "
                          f"or a closure") from e


def run(fn, world_size: int, *args, options: LaunchOptions | None = None, **kwargs) -> list:
    """Run ``fn(*args, **kwargs)`` on ``world_size`` ranks and return the list of per-rank results.

    ``options`` (:class:`LaunchOptions`) says how the ranks start; every other argument goes to ``fn`` untouched.
    """
    if not isinstance(world_size, int) or world_size < 1:
        raise LaunchError(f"world_size must be an integer >= 1, got {world_size!r}")
    options = options or LaunchOptions()
    if not isinstance(options, LaunchOptions):
        raise LaunchError(f"options must be a launch.LaunchOptions, got {type(options).__name__}")
    if under_torchrun():
        return _run_under_torchrun(fn, world_size, args, kwargs, options)
    backend = options.backend or default_backend(world_size)
    check_backend(backend, world_size)
    _check_picklable(fn)
    port = free_port(options.port)
    out_dir = tempfile.mkdtemp(prefix="ladder_edu_ranks_")
    ctx = mp.get_context("spawn")
    resolved = options.replace(backend=backend, port=port)
    procs = [ctx.Process(target=_worker, args=(r, world_size, resolved, (fn, args, kwargs), out_dir), daemon=True)
             for r in range(world_size)]
    try:
        for p in procs:
            p.start()
        return _collect(procs, out_dir, options.deadline_s, options.timeout_s)
    finally:
        for p in procs:
            if p.is_alive():
                p.kill()
        for p in procs:
            if p.pid is not None:                # a start that failed leaves nothing to join
                p.join(timeout=5)
        shutil.rmtree(out_dir, ignore_errors=True)


def _read(out_dir, rank):
    path = os.path.join(out_dir, f"rank{rank}.pt")
    return torch.load(path, weights_only=False) if os.path.exists(path) else None


def _collect(procs, out_dir, deadline_s, timeout_s):
    n, start = len(procs), time.monotonic()
    while True:
        results = [_read(out_dir, r) for r in range(n)]
        failed = [p for p in results if p is not None and not p["ok"]]
        if failed:
            time.sleep(0.5)                      # let the others report too, then blame the earliest failure
            results = [_read(out_dir, r) or {"ok": True} for r in range(n)]
            failed = sorted((p for p in results if not p["ok"]), key=lambda p: p["time"])
            first = failed[0]
            cls = CollectiveTimeout if first["timeout"] else RankError
            hint = (f" (a collective waited more than timeout_s={timeout_s:g} s: did a rank skip or reorder a "
                    f"collective?)" if first["timeout"] else "")
            others = "".join(f"\n  then rank {p['rank']}: {p['error'][:200]}" for p in failed[1:])
            done = [r for r, p in enumerate(results) if p.get("ok") and "result" in p]
            if done:
                others += (f"\n  rank {', '.join(map(str, done))} had already finished: did it skip a collective "
                           f"that the failed rank was waiting for?")
            raise cls(f"rank {first['rank']} of {n} failed{hint}: {first['error']}{others}\n"
                      f"--- traceback from rank {first['rank']} ---\n{first['traceback']}",
                      first["rank"], first["traceback"])
        if all(r is not None for r in results):
            return [r["result"] for r in results]
        for rank, p in enumerate(procs):
            if not p.is_alive() and _read(out_dir, rank) is None:
                raise RankError(f"rank {rank} of {n} died with exit code {p.exitcode} without reporting a result "
                                f"({_death_hint(p.exitcode)})", rank, exit_code=p.exitcode)
        if deadline_s is not None and time.monotonic() - start > deadline_s:
            missing = [r for r in range(n) if results[r] is None]
            raise CollectiveTimeout(f"the job did not finish within deadline_s={deadline_s:g} s; "
                                    f"ranks still running: {missing}", missing[0], whole_job=True)
        time.sleep(0.02)


def _death_hint(exitcode) -> str:
    """Why a rank may have died before reporting: exit code 1 is a Python error before the rank's function ran,
    most often a script that calls launch.run without a main guard (ranks start with "spawn", which re-imports
    the script, and the script then tries to launch again)."""
    script = getattr(sys.modules.get("__main__"), "__file__", None)
    if exitcode == 1 and script:
        return (f"a Python error while the rank imported {os.path.basename(script)}, printed above; if that script "
                f"calls launch.run at top level, put the call under `if __name__ == \"__main__\":` because ranks "
                f"start with 'spawn', which re-imports the script")
    return "killed by a signal, out of memory, or a crash in native code"


def _run_under_torchrun(fn, world_size, args, kwargs, options: LaunchOptions):
    """torchrun started the ranks: init from its environment, run fn here, all-gather the results."""
    env_world = int(os.environ["WORLD_SIZE"])
    if env_world != world_size:
        raise LaunchError(f"world size mismatch: asked for {world_size} ranks but torchrun started {env_world}; "
                          f"make --tp equal --nproc_per_node x --nnodes")
    if options.threads:
        torch.set_num_threads(options.threads)
    if not dist.is_initialized():
        backend = options.backend or ("nccl" if torch.cuda.is_available() and dist.is_nccl_available() else "gloo")
        check_backend(backend, world_size)
        device_for_rank(backend, int(os.environ.get("LOCAL_RANK", 0)))
        _init_group(backend, options.timeout_s, options.comm_priority)
    try:
        result = fn(*args, **kwargs)
        gathered = [None] * world_size
        dist.all_gather_object(gathered, result)
    except Exception as e:
        if looks_like_lost_peer(e):
            raise PeerLost(e) from e
        raise
    return gathered

