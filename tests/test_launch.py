"""The launcher: results in rank order; crashes, hangs and dead ranks end in bounded time with clear errors."""
import socket
import sys
import time
import types

import pytest

from ladder_edu.tp import launch
from tests import workers


def test_results_come_back_in_rank_order():
    res = launch.run(workers.rank_and_sum, 3, "payload")
    assert [r["rank"] for r in res] == [0, 1, 2]
    assert all(r["world"] == 3 and r["sum"] == 6.0 and r["x"] == "payload" for r in res)
    assert all(r["threads"] == 1 for r in res)


def test_a_rank_that_raises_is_named_with_its_traceback():
    t = time.monotonic()
    with pytest.raises(launch.RankError) as err:
        launch.run(workers.raise_on_rank, 2, 1, options=launch.LaunchOptions(timeout_s=20))
    assert err.value.rank == 1
    assert "rank 1 of 2 failed" in str(err.value) and "boom from rank 1" in str(err.value)
    assert "raise_on_rank" in err.value.remote_traceback
    assert time.monotonic() - t < 20


def test_a_skipped_collective_times_out():
    t = time.monotonic()
    with pytest.raises(launch.CollectiveTimeout, match="skip"):
        launch.run(workers.skip_all_reduce_on_rank, 2, 1, options=launch.LaunchOptions(timeout_s=3))
    assert time.monotonic() - t < 30


def test_a_rank_that_skipped_and_exited_is_pointed_at():
    with pytest.raises(launch.RankError, match="rank 1 had already finished"):
        launch.run(workers.skip_all_reduce_on_rank, 2, 1, True, options=launch.LaunchOptions(timeout_s=20))


def test_a_dead_rank_is_reported():
    t = time.monotonic()
    with pytest.raises(launch.RankError, match="rank 1 of 2 died with exit code 7"):
        launch.run(workers.die_on_rank, 2, 1)
    assert time.monotonic() - t < 20


def test_a_script_without_a_main_guard_is_told_how_to_fix_it(tmp_path):
    """Ranks start with spawn, which re-imports the script: at top level it would launch again inside each rank.
    The rank dies while importing; the error names the guard, and no secondary error hides it."""
    import os
    import subprocess
    script = tmp_path / "no_guard.py"
    script.write_text("from ladder_edu.tp import launch\nfrom tests import workers\n"
                      "launch.run(workers.rank_and_sum, 2, 'x', options=launch.LaunchOptions(timeout_s=20))\n")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([os.getcwd(), os.environ.get("PYTHONPATH", "")]))
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120, env=env,
                         cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    assert out.returncode != 0
    assert "RankError" in out.stderr and 'if __name__ == "__main__":' in out.stderr and "no_guard.py" in out.stderr
    assert "can only join a started process" not in out.stderr


def test_the_job_deadline_kills_a_stuck_rank():
    t = time.monotonic()
    with pytest.raises(launch.CollectiveTimeout, match="deadline_s=3"):
        launch.run(workers.sleep_forever, 2, options=launch.LaunchOptions(deadline_s=3))
    assert time.monotonic() - t < 20


def test_notebook_defined_function_gets_a_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "__main__", types.ModuleType("__main__"))   # a notebook's main has no file

    def f():
        pass
    f.__module__ = "__main__"
    with pytest.raises(launch.LaunchError, match="notebook cell"):
        launch.run(f, 2)


def test_lambdas_are_refused_clearly():
    with pytest.raises(launch.LaunchError, match="module-level function"):
        launch.run(lambda: 1, 2)


def test_bad_backends_name_the_valid_choices():
    with pytest.raises(launch.LaunchError, match="valid choices: gloo, nccl"):
        launch.run(workers.rank_and_sum, 2, 0, options=launch.LaunchOptions(backend="mpi"))
    if not launch.torch.cuda.is_available():
        with pytest.raises(launch.LaunchError, match="'nccl' is not available"):
            launch.run(workers.rank_and_sum, 2, 0, options=launch.LaunchOptions(backend="nccl"))


def test_a_busy_port_is_reported():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        with pytest.raises(launch.LaunchError, match=f"port {port} .* not free"):
            launch.run(workers.rank_and_sum, 2, 0, options=launch.LaunchOptions(port=port))


def test_world_size_mismatch_is_reported():
    with pytest.raises(launch.RankError, match="world size mismatch"):
        launch.run(workers.wrong_world_size, 2)


def test_torchrun_world_size_mismatch(monkeypatch):
    monkeypatch.setenv("TORCHELASTIC_RUN_ID", "x")
    monkeypatch.setenv("WORLD_SIZE", "4")
    with pytest.raises(launch.LaunchError, match="asked for 2 ranks but torchrun started 4"):
        launch.run(workers.rank_and_sum, 2, 0)


def test_comm_priority_is_validated():
    with pytest.raises(launch.LaunchError, match="valid choices: auto, normal, realtime"):
        launch.run(workers.rank_and_sum, 2, 0, options=launch.LaunchOptions(comm_priority="high"))


@pytest.mark.parametrize("priority", ["auto", "normal", "realtime"])
def test_comm_priority_leaves_the_compute_thread_normal(priority):
    import os
    allowed = os.geteuid() == 0
    if priority == "realtime" and not allowed:
        with pytest.raises(launch.RankError, match="needs Linux and root or CAP_SYS_NICE"):
            launch.run(workers.comm_priority_seen, 2, options=launch.LaunchOptions(comm_priority=priority))
        return
    res = launch.run(workers.comm_priority_seen, 2, options=launch.LaunchOptions(comm_priority=priority))
    expected = "realtime" if priority == "realtime" or (priority == "auto" and allowed) else "normal"
    assert [r["applied"] for r in res] == [expected, expected]
    assert all(r["main_policy"] == os.SCHED_OTHER for r in res)      # only gloo's threads are real-time


def test_worker_keywords_never_reach_the_launcher():
    seen = launch.run(workers.keywords_seen, 2, timeout_s=1, port="mine", options=launch.LaunchOptions(timeout_s=30))
    assert seen == [[("port", "mine"), ("timeout_s", 1)]] * 2


@pytest.mark.parametrize("bad,match", [(dict(timeout_s=0), "timeout_s must be > 0"),
                                       (dict(threads=0), "threads must be an integer >= 1"),
                                       (dict(port=70000), r"port must be an integer in \[1, 65535\]"),
                                       (dict(backend="mpi"), "valid choices: gloo, nccl")])
def test_launch_options_are_validated_once(bad, match):
    with pytest.raises(launch.LaunchError, match=match):
        launch.LaunchOptions(**bad)
