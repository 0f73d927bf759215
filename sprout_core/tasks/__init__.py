"""Task-aware directives: task classifier and per-task optimizer."""
