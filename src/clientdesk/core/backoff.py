"""Waiting out something that failed (the database, Redis): tries spaced from half a second to
five, and a log line when it fails and when it works again, not one per try."""

import logging


def one_line(error: BaseException) -> str:
    """`error` as one short line for a log: its type and message, whitespace folded."""
    text = " ".join(str(error).split())
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


class Backoff:
    """The waits between tries after a failure: 0.5 s, doubling, at most 5 s; reset by success."""

    FIRST_SECONDS = 0.5
    MOST_SECONDS = 5.0

    def __init__(self) -> None:
        self._next = self.FIRST_SECONDS
        self.failing = False

    def next(self) -> float:
        """How long to wait before the next try."""
        delay = self._next
        self._next = min(self.MOST_SECONDS, self._next * 2)
        return delay

    def failed(self, logger: logging.Logger, what: str, error: BaseException) -> float:
        """Note a failure of `what`; returns how long to wait. The first failure of a run is a
        warning, the ones after it debug lines."""
        delay = self.next()
        level = logging.DEBUG if self.failing else logging.WARNING
        self.failing = True
        logger.log(level, "%s (%s); trying again in %.1f s", what, one_line(error), delay)
        return delay

    def succeeded(self, logger: logging.Logger, what: str) -> None:
        """Note a success: after failures, `what` is logged once (a warning, as the failure)."""
        if self.failing:
            logger.warning("%s", what)
        self.failing = False
        self._next = self.FIRST_SECONDS
