"""A lab check ends in bounded time whatever the student's function does, says what happened, and several checks
run side by side on one machine (each its own ranks and port)."""
import os
import subprocess
import sys
import textwrap
import time

import pytest

from ladder_edu.labs import check_column_parallel

BOUND = 3.0


def loops_forever(x, weight, rank, world):
    while True:
        pass


def sleeps(x, weight, rank, world):
    import time
    time.sleep(3600)


def exits_the_rank(x, weight, rank, world):
    import os
    os._exit(3)


def prints_forever(x, weight, rank, world):
    while True:
        print("still here")


def calls_exit(x, weight, rank, world):
    raise SystemExit(1)


@pytest.mark.parametrize("fn,said", [
    (loops_forever, f"did not return within {BOUND:g} s"),
    (sleeps, f"did not return within {BOUND:g} s"),
    (prints_forever, "printed"),
    (exits_the_rank, "died while running your function (exit code 3)"),
    (calls_exit, "called exit()"),
], ids=["loop", "sleep", "print", "os._exit", "SystemExit"])
def test_a_bad_submission_ends_within_the_bound_and_says_what_happened(fn, said, monkeypatch, capfd):
    monkeypatch.setenv("LADDER_EDU_CHECK_BOUND_S", str(BOUND))
    start = time.monotonic()
    verdict = check_column_parallel(fn)
    took = time.monotonic() - start
    assert not verdict.passed and said in verdict.problem, str(verdict)
    assert "collective" not in verdict.problem                 # no collective was involved
    assert took < 2 * BOUND + 25, f"took {took:.0f} s"
    assert capfd.readouterr().out.count("still here") < 200      # printing forever never floods the notebook


def test_the_bound_is_configurable_and_checked(monkeypatch):
    monkeypatch.setenv("LADDER_EDU_CHECK_BOUND_S", "-1")
    with pytest.raises(ValueError, match="must be a number of seconds > 0"):
        check_column_parallel(loops_forever)


STUDENT = textwrap.dedent('''
    import sys
    from ladder_edu.labs import check_column_parallel

    def right(x, weight, rank, world):
        return x @ weight.chunk(world, dim=0)[rank].T

    def wrong(x, weight, rank, world):            # every rank takes rank 0's slice
        return x @ weight.chunk(world, dim=0)[0].T

    if __name__ == "__main__":
        print(check_column_parallel(right if sys.argv[1] == "right" else wrong).problem or "PASS")
''')


def test_four_students_checked_at_once_all_get_their_own_verdict(tmp_path):
    script = tmp_path / "student.py"
    script.write_text(STUDENT)
    kinds = ["right", "wrong", "right", "wrong"]
    procs = [subprocess.Popen([sys.executable, str(script), k], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True, env=dict(os.environ)) for k in kinds]
    outs = [p.communicate(timeout=240) for p in procs]
    for kind, p, (out, err) in zip(kinds, procs, outs):
        assert p.returncode == 0, err[-2000:]
        if kind == "right":
            assert "PASS" in out or "checked on" in out, out
        else:
            assert "returned rank 0's slice" in out, out
