"""Reading a child process's output in tests without hanging the suite."""

from __future__ import annotations

import subprocess
import threading

import pytest


def next_line(proc: subprocess.Popen, timeout: float = 300) -> str:
    """The child's next stdout line, or fail (and kill it) after ``timeout`` seconds."""
    box: list[str] = []
    reader = threading.Thread(target=lambda: box.append(proc.stdout.readline()), daemon=True)
    reader.start()
    reader.join(timeout)
    if not box:
        proc.kill()
        pytest.fail(f"no output from the child within {timeout} s")
    return box[0]
