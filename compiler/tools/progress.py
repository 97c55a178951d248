"""Progress for long work (compiling, benchmarking, profiling): a one-line bar on a terminal,
nothing at all when the stream is piped or redirected.

    with Progress("benchmarking", total=50) as bar:
        for _ in range(50):
            work(); bar.advance()
"""

from __future__ import annotations

import sys
import time
from typing import TextIO


class Progress:
    """A bar redrawn in place on `stream` (default stderr), at most every `interval` seconds.

    `enabled=None` means: only when the stream is a terminal. `total=None` shows a count
    instead of a bar. The line is erased on exit, so what follows starts on a clean line."""

    def __init__(self, label: str, total: int | None = None, *, stream: TextIO | None = None,
                 enabled: bool | None = None, interval: float = 0.1, width: int = 24):
        self.stream = stream if stream is not None else sys.stderr
        if enabled is None:
            isatty = getattr(self.stream, "isatty", None)
            enabled = bool(isatty and isatty())
        self.label, self.total, self.enabled = label, total, enabled
        self.interval, self.width = interval, width
        self.done, self.note = 0, ""
        self._last = 0.0
        self._shown = 0

    def __enter__(self) -> Progress:
        self._draw(force=True)
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def advance(self, n: int = 1, note: str | None = None) -> None:
        self.done += n
        if note is not None:
            self.note = note
        self._draw()

    def set(self, note: str) -> None:
        """Change the note shown after the bar (e.g. the current pass)."""
        self.note = note
        self._draw(force=True)

    def close(self) -> None:
        if self.enabled and self._shown:
            self.stream.write("\r" + " " * self._shown + "\r")
            self.stream.flush()
            self._shown = 0

    def _draw(self, force: bool = False) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        if not force and now - self._last < self.interval:
            return
        self._last = now
        if self.total:
            filled = int(self.width * min(self.done, self.total) / self.total)
            bar = f"[{'#' * filled}{'.' * (self.width - filled)}] {self.done}/{self.total}"
        else:
            bar = f"{self.done}" if self.done else ""
        line = " ".join(s for s in (self.label, bar, self.note) if s)[:119]
        self.stream.write("\r" + line.ljust(self._shown))
        self.stream.flush()
        self._shown = len(line)
