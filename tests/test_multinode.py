"""Multi-node, tested: two torchrun launchers on this machine stand for two nodes of 2 CPU ranks each (c10d
rendezvous, gloo), exactly the command the README and the lab guide give for a cluster."""
import os
import signal
import subprocess
import sys
import time

import pytest

from ladder_edu.tp.launch import free_port


def launch_nodes(args, run_id, port):
    """Start two 'nodes' (torchrun agents, each in its own process group); return the Popen objects."""
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "2", "--nproc-per-node", "2",
           "--rdzv-backend", "c10d", "--rdzv-endpoint", f"127.0.0.1:{port}", "--rdzv-id", run_id,
           "-m", "ladder_edu", *args]
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    return [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
                             start_new_session=True) for _ in range(2)]


def descendants(pid: int) -> list[int]:
    """Every process below ``pid`` (torchrun starts its ranks in sessions of their own, so killpg misses them)."""
    children = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
            children.setdefault(ppid, []).append(int(entry))
    out, todo = [], [pid]
    while todo:
        for c in children.get(todo.pop(), []):
            out.append(c)
            todo.append(c)
    return out


def kill_node(proc):
    """SIGKILL a 'node': its torchrun agent and every rank it started, as a machine that loses power."""
    for pid in [proc.pid] + descendants(proc.pid):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def finish(procs, timeout=180):
    outs = []
    for p in procs:
        try:
            out, _ = p.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            kill_node(p)
            out, _ = p.communicate()
            pytest.fail(f"a node did not finish within {timeout} s:\n{out[-3000:]}")
        outs.append(out)
    return [p.returncode for p in procs], outs


def test_check_across_two_nodes():
    codes, outs = finish(launch_nodes(["check", "--preset", "tiny", "--tp", "4", "--arch", "ladder"], "check",
                                      free_port()))
    assert codes == [0, 0], outs
    assert sum("PASS  ladder" in o and "TP=4 vs 1 device" in o for o in outs) == 1      # printed by rank 0 only


def test_short_bench_across_two_nodes():
    codes, outs = finish(launch_nodes(["bench", "--preset", "tiny", "--tp", "4", "--arch", "standard,ladder",
                                       "--steps", "2", "--rounds", "1"], "bench", free_port()))
    assert codes == [0, 0], outs
    assert any("decode, preset tiny, TP=4" in o and "ladder" in o for o in outs)


def test_killing_one_node_ends_the_other_with_a_clear_error_in_bounded_time():
    procs = launch_nodes(["bench", "--preset", "small", "--tp", "4", "--steps", "200", "--rounds", "50",
                          "--timeout", "30"], "kill", free_port())
    time.sleep(20)                                            # rendezvous done, the ranks are timing
    assert procs[0].poll() is None and procs[1].poll() is None, "the bench ended before the kill"
    kill_node(procs[1])                                       # node 1 goes away: its agent and both its ranks
    start = time.monotonic()
    try:
        out, _ = procs[0].communicate(timeout=120)
    except subprocess.TimeoutExpired:
        kill_node(procs[0])
        pytest.fail("node 0 still ran 120 s after node 1 was killed")
    elapsed = time.monotonic() - start
    procs[1].communicate()
    assert procs[0].returncode != 0 and elapsed < 90
    assert "lost contact with another rank during a collective" in out, out[-3000:]
