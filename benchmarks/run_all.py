"""Run every benchmark script (``tox -e bench``); each prints its own BENCH lines.

``python benchmarks/run_all.py [NAME ...]`` runs only the scripts whose name contains NAME.
A script that fails makes the run fail, after the others have run.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).parent


def main(argv: list[str]) -> int:
    scripts = sorted(HERE.glob("bench_*.py"))
    if argv:
        scripts = [s for s in scripts if any(name in s.stem for name in argv)]
    failed = []
    for script in scripts:
        print(f"# {script.name}", flush=True)
        start = time.perf_counter()
        result = subprocess.run([sys.executable, str(script)], cwd=HERE)
        print(f"# {script.name} took {time.perf_counter() - start:.0f} s", flush=True)
        if result.returncode != 0:
            failed.append(script.name)
    if failed:
        print("# failed: " + ", ".join(failed), file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
