"""Progress bars for pulls and pushes: :class:`RichProgress` renders the per-blob
:class:`~runtime.manifests.Progress` events with rich. Its own module, so that a pull without a terminal never
imports rich."""

from __future__ import annotations

from typing import Self

from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, TaskID, TextColumn, TransferSpeedColumn
from rich.progress import Progress as RichProgressBar


class RichProgress:
    """Renders one bar per blob and a total bar with rich. Use as a context manager around a pull or push."""

    def __init__(self, console: Console | None = None, *, transient: bool = False) -> None:
        self._bars = RichProgressBar(
            TextColumn("{task.description}"),
            BarColumn(),
            DownloadColumn(),
            TransferSpeedColumn(),
            console=console,
            transient=transient,
        )
        self._tasks: dict[str, TaskID] = {}
        self._totals: dict[str, int] = {}
        self._done: dict[str, int] = {}
        self._total_task = self._bars.add_task("total", total=0)

    def __enter__(self) -> Self:
        self._bars.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._bars.refresh()
        self._bars.stop()

    def begin(self, digest: str, total: int, action: str) -> None:
        """Add a bar for ``digest`` and grow the total bar."""
        self._tasks[digest] = self._bars.add_task(f"{_short(digest)} {action}", total=total)
        self._totals[digest] = total
        self._done[digest] = 0
        self._bars.update(self._total_task, total=sum(self._totals.values()))

    def update(self, digest: str, done: int) -> None:
        """Move ``digest``'s bar, and the total bar, to ``done`` bytes."""
        if digest in self._tasks:
            self._done[digest] = done
            self._bars.update(self._tasks[digest], completed=done)
            self._bars.update(self._total_task, completed=sum(self._done.values()))

    def end(self, digest: str, outcome: str) -> None:
        """Label ``digest``'s bar with the outcome; a skipped or mounted blob counts as done."""
        if digest in self._tasks:
            if outcome != "failed":
                self.update(digest, self._totals[digest])
            self._bars.update(self._tasks[digest], description=f"{_short(digest)} {outcome}")


def _short(digest: str) -> str:
    return digest.partition(":")[2][:12]
