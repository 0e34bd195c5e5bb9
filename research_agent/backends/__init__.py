"""Workers that run experiments: local git worktrees (skypilot comes later)."""
