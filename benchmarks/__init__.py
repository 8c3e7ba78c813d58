"""Benchmarks of the orchestrator against floors measured in the same run (see README.md).

Not collected by pytest: no module here is named test_*.py. Run `python -m benchmarks`.
"""
