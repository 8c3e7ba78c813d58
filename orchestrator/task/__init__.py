"""The WorkflowManager subprocess (`python -m orchestrator.task`): one task, agent process, checks."""
