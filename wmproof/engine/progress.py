"""Progress for long work, on stderr: a bar on a terminal (colour only where NO_COLOR is unset), and where
stderr is a file, a pipe or a CI log, one line every ``$WMPROOF_PROGRESS_SECONDS`` (default 30; 0: none),
so that a scripted run is never silent for minutes:

    progress: training mnist_mlp: 1120/2345 (48%), 0:00:31 elapsed, about 0:00:34 left, epoch 3, loss 0.0712
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, Protocol, TextIO

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)


class ProgressCallback(Protocol):
    def __call__(self, advance: int = 1, **fields: Any) -> None: ...


def _fields(fields: dict[str, Any], separator: str = "  ") -> str:
    return separator.join(f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v}" for k, v in fields.items())


def _clock(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


class ProgressLines:
    """Progress as plain lines, at most one per ``interval`` seconds, then a last one when the work ends (if
    any was printed): what a log keeps where a bar would be noise."""

    def __init__(
        self,
        description: str,
        total: int,
        interval: float,
        *,
        stream: TextIO | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.description, self.total, self.interval = description, max(total, 1), interval
        self.stream, self.clock = stream, clock
        self.start = self.last = clock()
        self.done, self.fields, self.printed = 0, "", 0

    def __call__(self, advance: int = 1, **fields: Any) -> None:
        self.done += advance
        self.fields = _fields(fields, ", ")
        now = self.clock()
        if now - self.last >= self.interval:
            self.last = now
            self._print(now)

    def finish(self) -> None:
        if self.printed:
            self._print(self.clock())

    def _print(self, now: float) -> None:
        elapsed = now - self.start
        parts = [f"{self.done}/{self.total} ({self.done / self.total:.0%})", f"{_clock(elapsed)} elapsed"]
        if 0 < self.done < self.total:
            parts.append(f"about {_clock(elapsed * (self.total - self.done) / self.done)} left")
        line = f"progress: {self.description}: {', '.join(parts)}" + (f", {self.fields}" if self.fields else "")
        print(line, file=self.stream or sys.stderr, flush=True)
        self.printed += 1


def line_interval() -> float:
    """Seconds between progress lines off a terminal: ``$WMPROOF_PROGRESS_SECONDS``, default 30, 0 for none."""
    try:
        return max(0.0, float(os.environ.get("WMPROOF_PROGRESS_SECONDS", "30")))
    except ValueError:
        return 30.0


@contextmanager
def progress_bar(description: str, total: int, *, enabled: bool | None = None) -> Iterator[ProgressCallback]:
    """Yields ``update(advance=1, **fields)``; fields (loss, acc...) are shown after the bar. ``enabled``:
    True for a bar, False for nothing, None (default) for a bar on a terminal and lines elsewhere."""
    console = Console(stderr=True)
    show = console.is_terminal if enabled is None else enabled
    if not show:
        interval = line_interval()
        if enabled is None and interval > 0:
            lines = ProgressLines(description, total, interval)
            try:
                yield lines
            finally:
                lines.finish()
            return
        yield lambda advance=1, **fields: None
        return
    progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        TextColumn("{task.fields[info]}"),
        console=console,
        transient=False,
    )
    with progress:
        task = progress.add_task(description, total=total, info="")

        def update(advance: int = 1, **fields: Any) -> None:
            progress.update(task, advance=advance, info=_fields(fields))

        yield update
