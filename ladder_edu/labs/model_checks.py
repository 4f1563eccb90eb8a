"""Lab 3, part 1: a model of one decode step from first principles, written by the student before any measurement.

Three pieces, each checked against the formula and against the misconceptions that give a plausible wrong number:

* ring all-reduce of B bytes over n ranks, per-hop latency alpha, bus bandwidth beta (NCCL's ring, Patarasuk &
  Yuan's bandwidth-optimal all-reduce): t = 2 (n - 1) alpha + 2 (n - 1) / n * B / beta;
* roofline of one matmul that reads W bytes and does F flops on a GPU of bandwidth bw and peak P:
  t = max(W / bw, F / P) (decode reads every weight once per token, so W / bw wins);
* the two-lane schedule of n modules, each computing c and then all-reducing a: standard waits for every
  all-reduce, t = n (c + a); ladder leaves the newest one in flight, t = c + (n - 1) max(c, a) + a
  = n max(c, a) + min(c, a) (``perf.model.critical_path``: the first module's compute and the last all-reduce
  cannot hide; in between, the slower lane sets the pace).
Units: microseconds, bytes, GB/s, TFLOP/s.
"""
from __future__ import annotations


from ..perf.model import critical_path as cp
from .runner import Misconception, Verdict, call, diagnose, failed, load_student


def allreduce_us(nbytes: float, world: int, alpha_us: float, bus_gbps: float) -> float:
    if world == 1:
        return 0.0
    return 2 * (world - 1) * alpha_us + 2 * (world - 1) / world * nbytes / (bus_gbps * 1e3)


def roofline_us(weight_bytes: float, flops: float, hbm_gbps: float, tflops: float) -> float:
    return max(weight_bytes / (hbm_gbps * 1e3), flops / (tflops * 1e6))


def schedule_us(compute_us: float, comm_us: float, n_modules: int, lag: int) -> float:
    lanes = cp.Lanes()
    for _ in range(n_modules):
        cp.step(lanes, cp.Module(compute_us, comm_us, lag), 0.0)
    return cp.finish(lanes)


def _run_cases(fn, cases, reference, wrong, fallback: str) -> Verdict:
    fn2, bad = load_student(fn)
    if bad:
        return bad
    for args in cases:
        got, problem = call(fn2, *args)
        if problem:
            return failed(problem)
        want = reference(*args)
        if not isinstance(got, (int, float)):
            return Verdict(False, f"{args}: returned {type(got).__name__}, expected a number of microseconds")
        if abs(got - want) <= 1e-6 * max(1.0, abs(want)):
            continue
        m = diagnose(got, args, wrong, lambda a, b: abs(a - b) <= 1e-6 * max(1.0, abs(want)))
        if m:
            return Verdict(False, f"{args}: {m.problem} (you said {got:.4g}, the formula gives {want:.4g})", m.hint)
        return Verdict(False, f"{args}: you said {got:.4g} us, the formula gives {want:.4g} us", fallback)
    return Verdict(True, f"checked {len(cases)} cases")


def check_allreduce_model(fn) -> Verdict:
    """``fn(nbytes, world, alpha_us, bus_gbps)`` -> microseconds of a ring all-reduce."""
    cases = [(16384, 8, 2.0, 300.0), (8 << 20, 8, 2.0, 300.0), (16384, 2, 5.0, 25.0), (1 << 30, 4, 1.0, 100.0),
             (4096, 1, 2.0, 300.0)]
    wrong = [
        Misconception(lambda b, n, a, w: a + b / (w * 1e3), "latency and bandwidth are paid once, as for one copy",
                      "a ring all-reduce is a reduce-scatter then an all-gather: 2 (n - 1) steps, each a latency and "
                      "1/n of the data"),
        Misconception(lambda b, n, a, w: (n - 1) * a + (n - 1) / n * b / (w * 1e3), "that is half an all-reduce",
                      "a reduce-scatter alone leaves each rank 1/n of the sum: the all-gather that follows costs as "
                      "much"),
        Misconception(lambda b, n, a, w: 2 * (n - 1) * a + 2 * (n - 1) / n * b / (w * 1e6), "off by 1000",
                      "1 GB/s moves 1000 bytes per microsecond"),
        Misconception(lambda b, n, a, w: 2 * (n - 1) * a + 2 * (n - 1) / n * b / w, "off by 1000",
                      "1 GB/s moves 1000 bytes per microsecond")]
    return _run_cases(fn, cases, allreduce_us, wrong,
                      "how many steps does each half of the ring take, and what does each step cost? (bytes / (GB/s) is nanoseconds)")


def check_roofline(fn) -> Verdict:
    """``fn(weight_bytes, flops, hbm_gbps, tflops)`` -> microseconds of one matmul by the roofline."""
    cases = [(2 * 8192 * 1024, 2 * 8192 * 1024, 3350.0, 989.0), (2 * 8192 * 1024, 2 * 8192 * 1024 * 512, 3350.0,
             989.0), (1e6, 1e6, 100.0, 1.0)]
    wrong = [
        Misconception(lambda w, f, bw, p: w / (bw * 1e3) + f / (p * 1e6), "you added the memory and compute times",
                      "reading and computing overlap: the slower of the two sets the time"),
        Misconception(lambda w, f, bw, p: w / (bw * 1e3), "you counted memory only",
                      "with many tokens per step a matmul becomes compute-bound"),
        Misconception(lambda w, f, bw, p: f / (p * 1e6), "you counted compute only",
                      "one token per step reads every weight once: memory time dominates")]
    return _run_cases(fn, cases, roofline_us, wrong,
                      "a kernel takes as long as the slower of reading its bytes and doing its flops")


def check_schedule(fn) -> Verdict:
    """``fn(compute_us, comm_us, n_modules, lag)`` -> microseconds of n modules under the due rule (lag 0 or 1)."""
    cases = [(10.0, 4.0, 8, 0), (10.0, 4.0, 8, 1), (3.0, 5.0, 8, 1), (5.0, 5.0, 160, 1), (5.0, 0.0, 4, 1),
             (2.0, 3.0, 1, 1)]
    wrong = [
        Misconception(lambda c, a, n, lag: n * max(c, a) if lag else n * (c + a),
                      "every all-reduce hid, the last one too",
                      "nothing follows the last module: its all-reduce is exposed"),
        Misconception(lambda c, a, n, lag: n * c if lag else n * (c + a), "you assumed communication always hides",
                      "an all-reduce longer than the next module's compute makes that module wait")]
    return _run_cases(fn, cases, schedule_us, wrong,
                      "walk the two lanes module by module: when may each module start, and when is the link free for its all-reduce?")


def fit_reference(sizes_bytes, times_us) -> tuple[float, float]:
    """(alpha_us, beta_gbps): the course's fit (``teach.costs.fit_alpha_beta``: relative error, alpha >= 0)."""
    from ..teach.costs import fit_alpha_beta
    alpha_s, beta = fit_alpha_beta(sizes_bytes, [t * 1e-6 for t in times_us])
    return 1e6 * alpha_s, beta / 1e9


def _plain_least_squares(sizes, times):
    n = len(sizes)
    mx, my = sum(sizes) / n, sum(times) / n
    slope = sum((x - mx) * (y - my) for x, y in zip(sizes, times)) / sum((x - mx) ** 2 for x in sizes)
    return my - slope * mx, 1 / (slope * 1e3)


def _unclamped(sizes, times):
    from ..perf.measure.timing import relative_line
    a, slope, _ = relative_line(sizes, times)
    return a, 1 / (slope * 1e3)


FIT_MISTAKES = (
    Misconception(_plain_least_squares, "a plain least-squares line: the largest messages decide it",
                  "weigh each point by its relative error, so that a 1 KB message counts as much as a 32 MB one"),
    Misconception(_unclamped, "a negative latency", "no message costs less than nothing: when the fitted intercept "
                  "is negative, fit a line with no intercept instead"),
    Misconception(lambda s, t: (0.0, 1e-3 * sum(x * x / y ** 2 for x, y in zip(s, t)) / sum(x / y for x, y in zip(s, t))),
                  "your line goes through the origin", "a latency is the time of an empty message: the line's "
                  "intercept (set to 0 only when the fit makes it negative)"),
    Misconception(lambda s, t: (fit_reference(s, t)[0], 1 / fit_reference(s, t)[1]),
                  "you returned the slope, not the bandwidth",
                  "the slope is microseconds per byte; a bandwidth is bytes per second (GB/s: 1000 bytes per us)"),
)


def check_fit_alpha_beta(fn) -> Verdict:
    """``fn(sizes_bytes, times_us)`` -> (alpha_us, beta_gbps): the line t = alpha + bytes / beta fitted by least
    squares on the *relative* error (each squared residual weighted by 1/t^2) with alpha >= 0 (a negative
    intercept refitted through the origin): the course's fit. Checked on a gloo-like and an NVLink-like link with noise, on times with
    a small-message floor (a CPU's), and on times whose intercept comes out negative."""
    import random
    fn2, bad = load_student(fn)
    if bad:
        return bad
    rng = random.Random(4)
    sizes = [1 << k for k in range(10, 26)]
    cases = {f"{name} link": [(alpha + s / (gbps * 1e3)) * (1 + 0.02 * rng.uniform(-1, 1)) for s in sizes]
             for name, alpha, gbps in (("a gloo-like", 370.0, 1.4), ("an NVLink-like", 20.0, 150.0))}
    cases["times with a floor (small messages cost 400 us)"] = [max(400.0, 50 + s / 1400) for s in sizes]
    cases["times whose intercept is negative"] = [s / 1400 * (0.5 if s < 1 << 16 else 1.0) for s in sizes]

    def close(got, want) -> bool:
        try:
            a, b = map(float, got)
        except (TypeError, ValueError):
            return False
        return abs(a - want[0]) <= 0.05 * abs(want[0]) + 0.05 and abs(b - want[1]) <= 0.05 * want[1]

    for what, times in cases.items():
        got, problem = call(fn2, sizes, times)
        if problem:
            return failed(problem)
        want = fit_reference(sizes, times)
        if not close(got, want):
            m = diagnose(got, (sizes, times), FIT_MISTAKES, close)
            return Verdict(False, f"{what}: you returned {got!r}; the fit gives alpha {want[0]:.4g} us, beta "
                           f"{want[1]:.4g} GB/s" + (f" ({m.problem})" if m else ""),
                           m.hint if m else "fit time against bytes with a slope and an intercept, each squared "
                           "residual weighted by 1/t^2 (a relative error); GB/s is 1000 bytes per microsecond")
    return Verdict(True, f"checked on {len(cases)} sets of times")
