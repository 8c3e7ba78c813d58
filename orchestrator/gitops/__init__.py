"""Every git command the orchestrator runs, plus bundles and the merge check built on them."""
