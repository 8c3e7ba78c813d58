"""`python -m benchmarks.registry_writer MON RUN TASK N START`: N timed ProcessRegistry.update calls."""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from orchestrator.state.registry import COALESCE_SECONDS, ProcessRegistry


def main(argv: list[str]) -> int:
    mon, run_id, task, count, start_at = Path(argv[0]), argv[1], argv[2], int(argv[3]), float(argv[4])
    # As a run uses it: heartbeat-level updates coalesced, status changes written at once.
    reg = ProcessRegistry.load(mon, run_id, coalesce=COALESCE_SECONDS)
    time.sleep(max(0.0, start_at - time.time()))
    lat = []
    phases = ("agent", "verify")
    for i in range(count):
        t0 = time.perf_counter()
        reg.update(task, phase=phases[i % 2])
        lat.append(time.perf_counter() - t0)
    reg.close()  # flushes what coalescing held back
    print(json.dumps(lat))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
