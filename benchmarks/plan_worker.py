"""`python -m benchmarks.plan_worker DIR N SHAPE`: one planning measurement in a clean process."""
from __future__ import annotations

import sys

from benchmarks.batch import main_plan_worker

sys.exit(main_plan_worker(sys.argv[1:]))
