"""`python -m orchestrator` and the `orchestrator` console script."""
from __future__ import annotations

import sys

from orchestrator.cli.main import main as cli_main


def main() -> None:
    # One name in every usage line, however it was started (run_orchestrator.sh uses `python -m`).
    sys.exit(cli_main(prog_name="orchestrator", standalone_mode=True))


if __name__ == "__main__":
    main()
