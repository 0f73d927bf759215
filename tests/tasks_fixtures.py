"""Shared by the task tests: a small reference classifier trained once per module (reference data needed)."""
from __future__ import annotations

import os
import shutil
from pathlib import Path


def train_tiny_reference(dest: Path) -> Path:
    """Train the reference classifier on 15 + 5 prompts per task into ``dest`` (a state folder); returns its tasks/ dir."""
    from sprout_core.tasks import classifier as tc

    old = os.environ.get("SPROUT_STATE_DIR")
    os.environ["SPROUT_STATE_DIR"] = str(dest)
    try:
        tc.train_reference_classifier(train_per_task=15, test_per_task=5, seed=0)
    finally:
        if old is None:
            os.environ.pop("SPROUT_STATE_DIR", None)
        else:
            os.environ["SPROUT_STATE_DIR"] = old
    return dest / "tasks"


def install(tasks_dir: Path, state: Path) -> None:
    """Copy a trained tasks/ folder into a test's state folder."""
    shutil.copytree(tasks_dir, state / "tasks", dirs_exist_ok=True)
