"""A one-line progress bar on stderr, with no dependency.

::

    bar = ProgressBar(total=57, label="epoch 1/5")
    for ...:
        bar.update(1, "loss 0.512  acc 85.1%")
    bar.close()

It draws only when its stream is a terminal (so logs and pipes stay clean)
and not more often than every ``min_interval`` seconds; ``close`` wipes the
line so the next ``print`` starts on a clean one.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO


class ProgressBar:
    """``label [#########.........] done/total  postfix``, redrawn in place.

    Parameters
    ----------
    total : int
        Number of steps (e.g. batches in the epoch).
    label : str
        Text in front of the bar.
    stream : text stream, optional
        Where to draw; ``sys.stderr`` by default.
    enabled : bool, optional
        Force drawing on or off; ``None`` draws when ``stream`` is a terminal.
    width : int
        Characters of the bar itself.
    min_interval : float
        Seconds between redraws (the last step is always drawn).
    """

    def __init__(
        self,
        total: int,
        label: str = "",
        stream: TextIO | None = None,
        enabled: bool | None = None,
        width: int = 30,
        min_interval: float = 0.1,
    ):
        self.total = max(int(total), 1)
        self.label = label
        self.stream = sys.stderr if stream is None else stream
        if enabled is None:
            enabled = bool(getattr(self.stream, "isatty", lambda: False)())
        self.enabled = enabled
        self.width = width
        self.min_interval = min_interval
        self.done = 0
        self._last_draw = -float("inf")
        self._drawn_chars = 0

    def update(self, n: int = 1, postfix: str = "") -> None:
        """Advance by ``n`` steps and show ``postfix`` (e.g. running loss and accuracy)."""
        self.done += n
        if not self.enabled:
            return
        now = time.monotonic()
        if now - self._last_draw < self.min_interval and self.done < self.total:
            return
        self._last_draw = now
        filled = self.width * min(self.done, self.total) // self.total
        bar = "#" * filled + "." * (self.width - filled)
        line = f"{self.label} [{bar}] {self.done}/{self.total}  {postfix}".rstrip()
        pad = " " * max(self._drawn_chars - len(line), 0)
        self.stream.write("\r" + line + pad)
        self.stream.flush()
        self._drawn_chars = len(line)

    def close(self) -> None:
        """Wipe the bar's line (nothing to do when it never drew)."""
        if self.enabled and self._drawn_chars:
            self.stream.write("\r" + " " * self._drawn_chars + "\r")
            self.stream.flush()
            self._drawn_chars = 0

    def __enter__(self) -> ProgressBar:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
