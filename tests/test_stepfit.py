"""The step without communication, calibrated on the authors' logs: the solver, the fit, and why the GEMV's fixed
cost is held at its single-kernel measurement."""
import pytest

from ladder_edu.perf.model import stepfit
from ladder_edu.perf.model.hardware import HARDWARE, STEP_FROM_LOGS
from ladder_edu.perf.model.logfit import theil_sen
from ladder_edu.perf.model.logs import cells

NVL = HARDWARE["h100-nvlink"]


def test_the_solvers_find_known_minima():
    x = stepfit.levenberg_marquardt(lambda z: [z[0] - 3.0, 2 * (z[1] + 1.0), z[0] * z[1] + 3.0], [0.0, 0.0])
    assert x == [pytest.approx(3.0, abs=1e-4), pytest.approx(-1.0, abs=1e-4)]
    assert stepfit.golden(lambda f: (f - 0.37) ** 2, 0.0, 1.0) == pytest.approx(0.37, abs=1e-3)
    assert theil_sen([(1, 3.0), (3, 4.0), (7, 6.0), (7, 60.0)]) == (pytest.approx(2.5), pytest.approx(0.5))


def test_the_calibrated_step_describes_every_no_communication_cell():
    """Every no-all-reduce cell of 8B (TP 1-8) and 70B (TP 4, 8), batch 1-64: decode within 5% each and 2% on
    average; prefill within 15% each and 8% on average (the prefill is one constant, ``flop_eff``)."""
    assert set(stepfit.DECODE_PARAMS + stepfit.PREFILL_PARAMS) == set(STEP_FROM_LOGS)
    s = stepfit.summary()
    assert s["decode"]["mean"] < 0.02 and s["decode"]["max"] < 0.05
    assert s["prefill"]["mean"] < 0.08 and s["prefill"]["max"] < 0.15


def test_the_calibration_starts_from_the_single_kernel_measurements_whatever_the_preset_holds():
    moved = NVL.with_(small_us=5.0, mem_eff=0.7, skinny_us=1.0, kv_repeat=0.0, flop_eff=0.8)
    fresh = stepfit.calibrate_step(cells(models=("llama-3-8b",), tps=(1, 8)), moved)
    again = stepfit.calibrate_step(cells(models=("llama-3-8b",), tps=(1, 8)), NVL)
    assert all(getattr(fresh.eff, k) == getattr(again.eff, k) for k in stepfit.STEP)


def test_a_gemvs_fixed_cost_trades_with_the_small_kernels_so_it_is_held():
    """Every layer launches as many matmuls (4) and small kernels (10) at every batch size, so a microsecond moved
    from each matmul (GEMV and skinny GEMM alike) to the small kernels (0.4 us each) hardly changes any cell: the
    logs cannot say which, and ``kernel_us`` keeps its H100 measurement. Moving it one way alone does."""
    base = sum(e * e for e in stepfit.errors(NVL))
    e = NVL.eff
    traded = NVL.with_(kernel_us=e.kernel_us - 1.0, skinny_us=e.skinny_us - 1.0, small_us=e.small_us + 0.4)
    assert sum(x * x for x in stepfit.errors(traded)) == pytest.approx(base, rel=0.1)
    assert sum(x * x for x in stepfit.errors(NVL.with_(small_us=e.small_us + 0.4))) > 1.5 * base
