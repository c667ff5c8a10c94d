"""The fault matrix: uploads and reads against stand-ins injecting 0, 10 and 20 % mixed faults
(503s, dropped connections, slow and lost answers on GraphQL, S3 and the tracker).

Prints the matrix, then two BENCH lines for the 20 % cell: the share of uploads that succeeded
(baseline: all of them) and the count of bad outcomes, i.e. wrong results, duplicates,
half-registered and orphaned objects, and untyped errors (baseline: none).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the repository's tests/

from tests.fault_matrix import combined, run_mikro, run_tracker

try:
    from ._bench import bench
except ImportError:
    from _bench import bench


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--uploads", type=int, default=24, help="mikro uploads per cell")
    parser.add_argument("--seeds", type=int, default=2, help="seeded runs per cell")
    args = parser.parse_args()
    twenty = None
    for rate in (0.0, 0.1, 0.2):
        cells = []
        for seed in range(args.seeds):
            cells.append(run_mikro(rate, uploads=args.uploads, seed=100 + seed))
            cells.append(run_tracker(rate, operations=args.uploads, seed=200 + seed))
        total = combined(*cells)
        print(total.row(), dict(total.failures), flush=True)
        if rate == 0.2:
            twenty = total
    assert twenty is not None
    bench("faults_upload_success_20pct", twenty.success_percent, "%", 100.0)
    bench("faults_bad_outcomes", twenty.bad_outcomes, "count", 0.0)


if __name__ == "__main__":
    main()
