"""What the stress probes and their fixtures share: sizes, paths, a bounded wait.

A plain module (tests/stress is on ``sys.path`` when pytest runs the suite),
so that test modules need not import ``conftest``.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any, Callable

import pytest

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
HOST = "127.0.0.1"
MiB = 1 << 20

# ------------------------------------------------------------------ sizes

MODE = os.environ.get("SIMPLERPC_STRESS", "").strip().lower() or "ci"
if MODE not in ("ci", "full"):
    raise pytest.UsageError(f"SIMPLERPC_STRESS={MODE!r}: use 'full' (the by-hand run) or leave it unset / 'ci'")
FULL = MODE == "full"


def size(ci: Any, full: Any) -> Any:
    """The reduced (CI) or the full figure, by ``SIMPLERPC_STRESS``."""
    return full if FULL else ci


def wait_for(predicate: Callable[[], bool], timeout: float, interval: float = 0.1) -> bool:
    """Poll ``predicate`` until it holds or ``timeout`` seconds pass; its last answer."""
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)
