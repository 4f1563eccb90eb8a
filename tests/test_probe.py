"""The overlap probe runs on real ranks and reports sane fields (no timing assertions)."""
from ladder_edu.profiling.probe import format_probe, overlap_probe


def test_overlap_probe_reports_every_size():
    res = overlap_probe(2, sizes=(1, 2), iters=3, modules=2)
    assert [r.matvecs for r in res["rows"]] == [1, 2]
    for r in res["rows"]:
        assert r.compute_ms > 0 and r.allreduce_ms > 0 and 0 <= r.done_during_compute <= 1
        assert r.blocking_ms > 0 and r.lagged_ms > 0 and r.lagged_speedup > 0
    assert res["comm_priority"] in ("normal", "realtime")
    assert "overlap probe" in format_probe(res, modules=2)
