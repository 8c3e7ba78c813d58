"""OrchestratorCoordinator and ExecutionEngine: a run from plan to report, retries, resume."""
