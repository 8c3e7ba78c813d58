"""TaskAnalyzer: prompt files in, tasks with scopes, dependencies and conflicts out (the plan)."""
