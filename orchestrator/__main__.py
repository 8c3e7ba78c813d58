"""`python -m orchestrator` and the `orchestrator` console script."""
from __future__ import annotations

import sys

from orchestrator.cli.main import main as cli_main


def main() -> None:
    sys.exit(cli_main(standalone_mode=True))


if __name__ == "__main__":
    main()
