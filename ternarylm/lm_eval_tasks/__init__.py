"""lm-evaluation-harness task files shipped with ternarylm (``--include_path`` this folder)."""

from pathlib import Path

TASKS_DIR = Path(__file__).resolve().parent
