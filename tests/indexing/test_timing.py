"""Stage times of a build: each stage's own time, nested stages counted once."""

from __future__ import annotations

import time

from bekb.indexing.timing import Stopwatch


def test_a_nested_stage_is_counted_in_itself_only():
    clock = Stopwatch()
    with clock.stage("outer"):
        time.sleep(0.02)
        with clock.stage("inner"):
            time.sleep(0.05)
    with clock.stage("outer"):
        time.sleep(0.01)

    totals = clock.totals()
    assert list(totals) == ["inner", "outer"]  # in the order each stage was first closed
    assert 0.05 <= totals["inner"] < 0.09
    assert 0.03 <= totals["outer"] < 0.07


def test_an_index_run_reports_where_its_time_went(tiny_kb):
    report = tiny_kb.index()

    assert {"select", "scan", "chunk", "embed", "write", "keyword index", "commit"} <= set(
        report.timings
    )
    assert all(seconds >= 0 for seconds in report.timings.values())
    assert abs(sum(report.timings.values()) - report.seconds) < 0.05
