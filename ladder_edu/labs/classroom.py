"""What a class costs, measured: each lab's answer key executed as a student's notebook would be, and nbgrader's
autograde of many submissions, serial or in parallel. The guide's numbers come from here (notebooks/labs/README.md).

    python -m ladder_edu.labs.classroom cost  [--labs lab1_...] [--json FILE]
        per lab: wall seconds, CPU seconds (so cores busy on average), and peak memory of the notebook's kernel and
        every rank it starts (the process tree's proportional set size, sampled every 0.1 s), start-up included
    python -m ladder_edu.labs.classroom grade-cost ASSIGNMENT [--students N] [--workers 1 2]
        N copies of the answer key autograded in a scratch course, serial and K at a time: seconds per submission
    python -m ladder_edu.labs.classroom grade COURSE ASSIGNMENT [--workers K]
        ``nbgrader autograde ASSIGNMENT --student S`` for every student folder under COURSE/submitted, K at a time

nbgrader grades one submission after another; ``grade`` runs K autogrades at once, each for one student, and
retries one whose gradebook write met another's lock (nbgrader's gradebook is one SQLite file). Each autograde runs
the student's code, which starts its own ranks: give a grader machine K x (a lab's cores) cores, and run it in a
container, since student code runs unsandboxed.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

LABS_DIR = Path(__file__).resolve().parents[2] / "notebooks" / "labs"
LOCKED = "database is locked"


def _tree(pid: int):
    import psutil
    try:
        p = psutil.Process(pid)
        return [p] + p.children(recursive=True)
    except psutil.NoSuchProcess:
        return []


def _memory(p) -> float:
    """Proportional set size (shared pages split among their users) where Linux reports it, else resident size."""
    try:
        return float(p.memory_full_info().pss)
    except (AttributeError, OSError, Exception):  # noqa: BLE001 - psutil raises its own AccessDenied
        return float(p.memory_info().rss)


def measure(cmd: list[str], cwd: str | None = None, timeout: float = 1800) -> dict:
    """Run ``cmd``; its wall seconds, the CPU seconds of its whole process tree (every descendant reaped, from
    ``getrusage(RUSAGE_CHILDREN)``) and the tree's peak memory in MB (the sum of its processes' proportional set
    sizes, sampled every 0.1 s). Raises when it fails."""
    import psutil
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.monotonic()
    proc = subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    peak = 0.0
    while proc.poll() is None:
        total = 0.0
        for p in _tree(proc.pid):
            try:
                total += _memory(p)
            except psutil.NoSuchProcess:
                continue
        peak = max(peak, total)
        if time.monotonic() - t0 > timeout:
            proc.kill()
            raise TimeoutError(f"{' '.join(cmd)} ran past {timeout:g} s")
        time.sleep(0.1)
    out = proc.stdout.read() if proc.stdout else ""
    wall = time.monotonic() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode:
        raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}): {out[-2000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {"wall_s": round(wall, 1), "cpu_s": round(cpu, 1), "cores": round(cpu / wall, 2),
            "peak_mb": round(peak / 2 ** 20)}


def lab_cost(lab: str) -> dict:
    """``measure`` of executing lab ``lab``'s answer key (``notebooks/labs/source``) with nbconvert."""
    src = LABS_DIR / "source" / lab / f"{lab}.ipynb"
    if not src.exists():
        valid = ", ".join(sorted(p.name for p in (LABS_DIR / "source").iterdir() if p.is_dir()))
        raise ValueError(f"no lab {lab!r}; valid: {valid}")
    with tempfile.TemporaryDirectory(prefix="ladder_edu_cost_") as out:
        cmd = [sys.executable, "-m", "jupyter", "nbconvert", "--to", "notebook", "--execute", str(src),
               "--output-dir", out, "--ExecutePreprocessor.timeout=1200"]
        return {"lab": lab, **measure(cmd, cwd=str(src.parent))}


def autograde(course: Path, assignment: str, student: str, threads: int | None = None, retries: int = 20) -> float:
    """Seconds one ``nbgrader autograde`` of one student took, retrying while the gradebook is locked. ``threads``:
    the intra-op threads its kernel may use (``OMP_NUM_THREADS``; K autogrades at once on C cores get C / K each,
    since more threads than cores make every one of them spin and wait)."""
    env = dict(os.environ, LADDER_EDU_DEVICE=os.environ.get("LADDER_EDU_DEVICE", "cpu"))   # grade on CPU ranks
    if threads:
        env["OMP_NUM_THREADS"] = str(threads)
    t0 = time.monotonic()
    for attempt in range(retries):
        res = subprocess.run([sys.executable, "-m", "nbgrader", "autograde", assignment, "--student", student,
                              "--force"], cwd=course, capture_output=True, text=True, timeout=1800, env=env)
        text = res.stdout + res.stderr
        if res.returncode == 0 and LOCKED not in text:
            return time.monotonic() - t0
        if LOCKED not in text:
            raise RuntimeError(f"autograde of {student} failed: {text[-2000:]}")
        time.sleep(0.5 + attempt)
    raise RuntimeError(f"autograde of {student}: the gradebook stayed locked through {retries} tries")


def grade(course: Path, assignment: str, workers: int = 1) -> dict:
    """Autograde every submission of ``assignment`` under ``course/submitted``, ``workers`` at a time; the wall
    time and each student's."""
    if workers < 1:
        raise ValueError(f"--workers must be >= 1, got {workers}")
    students = sorted(p.parent.name for p in (course / "submitted").glob(f"*/{assignment}"))
    if not students:
        raise ValueError(f"no submissions of {assignment} under {course / 'submitted'}")
    t0 = time.monotonic()
    threads = max(1, (os.cpu_count() or 1) // workers)

    def one(student):
        try:
            return autograde(course, assignment, student, threads), None
        except (RuntimeError, subprocess.TimeoutExpired) as e:
            return None, str(e).splitlines()[0][:300]
    with ThreadPoolExecutor(workers) as pool:
        each = dict(zip(students, pool.map(one, students)))
    return {"assignment": assignment, "workers": workers, "students": len(students),
            "wall_s": round(time.monotonic() - t0, 1),
            "per_student_s": {s: round(t, 1) for s, (t, err) in each.items() if err is None},
            "failed": {s: err for s, (t, err) in each.items() if err is not None}}


def grade_cost(assignment: str, students: int = 4, workers=(1, 2)) -> list[dict]:
    """Autograde ``students`` copies of ``assignment``'s answer key in a scratch course, once per entry of
    ``workers`` (K autogrades at a time); the wall time of each and the seconds per submission."""
    rows = []
    for k in workers:
        with tempfile.TemporaryDirectory(prefix="ladder_edu_grade_") as tmp:
            course = Path(tmp)
            shutil.copytree(LABS_DIR / "source" / assignment, course / "source" / assignment)
            shutil.copy(LABS_DIR / "nbgrader_config.py", course)
            nb = course / "source" / assignment / f"{assignment}.ipynb"
            _nbgrader(course, "generate_assignment", assignment, "--force")
            for i in range(students):
                (course / "submitted" / f"s{i:02d}" / assignment).mkdir(parents=True)
                shutil.copy(nb, course / "submitted" / f"s{i:02d}" / assignment)
                _nbgrader(course, "db", "student", "add", f"s{i:02d}")
            r = grade(course, assignment, k)
            rows.append({"assignment": assignment, "students": students, "workers": k, "wall_s": r["wall_s"],
                         "per_submission_s": round(r["wall_s"] / students, 1)})
    return rows


def _nbgrader(course: Path, *args) -> None:
    res = subprocess.run([sys.executable, "-m", "nbgrader", *args], cwd=course, capture_output=True, text=True,
                         timeout=600)
    if res.returncode:
        raise RuntimeError(f"nbgrader {' '.join(args)} failed: {(res.stdout + res.stderr)[-2000:]}")


MINUTES = {"lab1_tensor_parallel_linear": 35, "lab2_due_rule": 25, "lab3_predict_then_measure": 45,
           "lab4_read_a_profile": 40, "lab5_convert_a_pretrained_model": 35}
"""A student's time per lab (the estimate each lab's notebook states; tests/test_labs_index.py keeps them equal)."""
RANKS_PER_CHECK = 2


def guide_tables(data: dict) -> dict[str, str]:
    """The guide's tables and sentences from ``classroom-cost.json`` (``cost`` and ``grade-cost`` rows): the
    guide holds exactly these strings (tests/test_labs_index.py)."""
    cost = {r["lab"]: r for r in data["cost"]}
    rows = "\n".join(f"| {lab.split('_')[0][3:]} `{lab}` | about {MINUTES[lab]} min | {r['wall_s']:.0f} s | "
                     f"{r['cpu_s']:.0f} s | {r['peak_mb'] / 1024:.1f} GiB |" for lab, r in sorted(cost.items()))
    grade_rows = "\n".join(f"    {r['assignment']}: {r['students']} submissions, {r['workers']} at a time: "
                           f"{r['wall_s']:.0f} s ({r['per_submission_s']:.1f} s per submission)" for r in data["grade"])
    per = {(r["assignment"], r["workers"]): r["per_submission_s"] for r in data["grade"]}
    grade_30 = "; ".join(f"{lab.split('_')[0]} about {30 * s / 60:.0f} min one at a time, "
                         f"{30 * per[lab, 2] / 60:.0f} min two at a time on these 2 cores"
                         for (lab, k), s in sorted(per.items()) if k == 1 and (lab, 2) in per)
    peak = max(r["peak_mb"] for r in data["cost"]) / 1024
    heavy = max(cost, key=lambda lab: cost[lab]["peak_mb"])
    fit = (f"* memory: {peak:.1f} GiB per student at the peak of the heaviest lab ({heavy.split('_')[0]}); the "
           f"others need less (the table);\n"
           f"* cores: a running check keeps {RANKS_PER_CHECK} cores busy for its seconds, and a student's kernel idles "
           f"between checks;\n"
           f"* so a machine with C cores and M GiB runs min(C / {RANKS_PER_CHECK}, M / {peak:.1f}) students' checks at "
           f"once at full speed. A 2-core, 24 GiB VM: one student at full speed; more share its two cores whenever "
           f"their checks coincide. Thirty students all checking at the same moment need "
           f"{30 * RANKS_PER_CHECK} cores and {30 * peak:.0f} GiB: one large CPU node, or a GPU node in CPU mode "
           f"(`LADDER_EDU_DEVICE=cpu`). On GPUs each student needs {RANKS_PER_CHECK} GPUs, one per rank: an 8-GPU node "
           f"serves {8 // RANKS_PER_CHECK} students at a time (`CUDA_VISIBLE_DEVICES`, below), so a class of 30 on one "
           f"node runs in CPU mode.")
    return {"COST_ROWS": rows, "GRADE_ROWS": grade_rows, "GRADE_30": grade_30, "CLASS_FIT": fit}


def update_json(path: Path, section: str, rows: list[dict], key) -> None:
    """Put ``rows`` into ``path``'s list ``section`` (a JSON object: "machine", "cost", "grade"), replacing rows with
    the same ``key``; written atomically."""
    import platform
    from ..util.atomic import write_json
    data = json.loads(path.read_text()) if path.exists() else {}
    new = {key(r) for r in rows}
    data[section] = [r for r in data.get(section, []) if key(r) not in new] + rows
    data["machine"] = f"{os.cpu_count()} cores, {platform.machine()}, Python {platform.python_version()}"
    write_json(str(path), data, indent=1)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(prog="python -m ladder_edu.labs.classroom", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="what", required=True)
    c = sub.add_parser("cost", help="execute each lab's answer key; wall, CPU and peak memory")
    c.add_argument("--labs", nargs="*", default=None)
    c.add_argument("--json", default=None)
    gc = sub.add_parser("grade-cost", help="autograde N copies of a lab's answer key, serial and K at a time")
    gc.add_argument("assignment")
    gc.add_argument("--students", type=int, default=4)
    gc.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    gc.add_argument("--json", default=None, help="append the rows to this JSON list")
    g = sub.add_parser("grade", help="autograde every submission, K at a time")
    g.add_argument("course")
    g.add_argument("assignment")
    g.add_argument("--workers", type=int, default=1)
    a = p.parse_args(argv)
    if a.what == "cost":
        labs = a.labs or sorted(q.name for q in (LABS_DIR / "source").iterdir() if q.is_dir())
        rows = [lab_cost(lab) for lab in labs]
        for r in rows:
            print(f"{r['lab']:36s} {r['wall_s']:7.1f} s wall {r['cpu_s']:7.1f} s CPU ({r['cores']:.2f} cores) "
                  f"{r['peak_mb']:6d} MB peak")
        if a.json:
            update_json(Path(a.json), "cost", rows, key=lambda r: r["lab"])
    elif a.what == "grade-cost":
        rows = grade_cost(a.assignment, a.students, a.workers)
        if a.json:
            update_json(Path(a.json), "grade", rows, key=lambda r: (r["assignment"], r["workers"]))
        for r in rows:
            print(f"{r['assignment']}: {r['students']} submissions, {r['workers']} at a time: {r['wall_s']:.0f} s "
                  f"({r['per_submission_s']:.1f} s per submission)")
    else:
        print(json.dumps(grade(Path(a.course), a.assignment, a.workers), indent=1))


if __name__ == "__main__":
    main()
