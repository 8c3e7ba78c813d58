"""`python -m orchestrator.task --request FILE`: the stable way to start a WorkflowManager."""
from __future__ import annotations

import sys

from orchestrator.task.workflow_manager import main

if __name__ == "__main__":
    sys.exit(main())
