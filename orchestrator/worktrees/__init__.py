"""WorktreeManager: one worktree and branch per task, the pool of recycled checkouts, setup hooks."""
