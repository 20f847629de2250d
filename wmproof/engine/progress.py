"""Progress bars for long work: on stderr, only on a terminal, colour only where NO_COLOR is unset."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Protocol

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


@contextmanager
def progress_bar(description: str, total: int, *, enabled: bool | None = None) -> Iterator[ProgressCallback]:
    """Yields ``update(advance=1, **fields)``; fields (loss, acc...) are shown after the bar."""
    console = Console(stderr=True)
    show = console.is_terminal if enabled is None else enabled
    if not show:
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
            info = "  ".join(f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v}" for k, v in fields.items())
            progress.update(task, advance=advance, info=info)

        yield update
