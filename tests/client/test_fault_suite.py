"""The fault suite: at 20 % mixed faults (503s, dropped connections, slow and lost answers, on
GraphQL, S3 and the tracker), uploads and reads never give a wrong result, a duplicate, a
half-registered or orphaned object, or an untyped error; at least 95 % of uploads succeed.

Loops are bounded (a fixed number of operations per seeded run), so the suite's time is too.
"""

from __future__ import annotations

from tests.fault_matrix import combined, run_mikro, run_tracker

RATE = 0.2


def test_twenty_percent_mixed_faults_lose_and_duplicate_nothing() -> None:
    mikro = run_mikro(RATE, uploads=16, seed=7)
    tracker = run_tracker(RATE, operations=16, seed=7)
    total = combined(mikro, tracker)
    report = f"mikro: {mikro.row()}\ntracker: {tracker.row()}\nfailures: {dict(total.failures)}"
    assert total.wrong == 0, report
    assert total.duplicates == 0, report
    assert total.half_registered == 0, report
    assert total.orphaned == 0, report
    assert total.untyped == 0, report
    assert total.success_percent >= 95.0, report
    assert total.reads_ok == total.reads, report
