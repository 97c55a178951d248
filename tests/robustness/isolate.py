"""Running code in a child Python process, so that a crash (a segfault in generated code)
fails one test instead of killing pytest."""

from __future__ import annotations

import os
import resource
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _no_core_files() -> None:
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))  # a crash we provoke leaves no core


def run_isolated(code: str, timeout: float = 120, env: dict | None = None,
                 cwd: str | os.PathLike | None = None) -> str:
    """Run `code` in a fresh interpreter at the repository root; return its stdout, or fail
    the calling test with its exit status (a signal named) and its output."""
    full_env = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=cwd or ROOT,
                          env=full_env, capture_output=True, text=True, timeout=timeout,
                          preexec_fn=_no_core_files)
    if proc.returncode != 0:
        status = (f"killed by {signal.Signals(-proc.returncode).name}" if proc.returncode < 0
                  else f"exit status {proc.returncode}")
        raise AssertionError(f"child process {status}\n--- stdout\n{proc.stdout[-4000:]}\n"
                             f"--- stderr\n{proc.stderr[-4000:]}")
    return proc.stdout
