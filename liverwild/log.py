"""Logging through the standard library: every module logs to a child of the ``liverwild`` logger.

The console scripts call :func:`configure_logging` (``-v`` adds debug messages, ``-q`` keeps warnings
and errors only); messages then appear as plain lines on standard output. From Python, nothing is
printed below warnings unless you configure logging yourself, as with any library::

    import logging
    logging.basicConfig(level=logging.INFO)          # or: liverwild.log.configure_logging()

Per-scan and per-case failures are warnings ("FAILED <file>: <reason>"); progress and results are
info; details (weights sources, per-stage timings) are debug.
"""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Iterator

ROOT = "liverwild"
LEVELS = {-1: logging.WARNING, 0: logging.INFO, 1: logging.DEBUG}


def get_logger(module: str) -> logging.Logger:
    """The logger of ``module`` (pass ``__name__``): ``liverwild.*`` as it is, ``planning.*`` and
    ``preprocessing.*`` below ``liverwild`` too, so one configuration covers every package."""
    return logging.getLogger(module if module.split(".")[0] == ROOT else f"{ROOT}.{module}")


class ConsoleHandler(logging.StreamHandler):
    """Writes to the *current* ``sys.stdout`` (so redirected or captured output receives the lines)."""

    @property
    def stream(self):
        return sys.stdout

    @stream.setter
    def stream(self, value) -> None:  # StreamHandler.__init__ assigns one; the current stdout is used instead
        pass


def configure_logging(verbosity: int = 0) -> logging.Logger:
    """Show ``liverwild`` messages on standard output: ``verbosity`` −1 warnings only, 0 info, 1 debug.
    Calling it again replaces the previous console handler. Returns the ``liverwild`` logger."""
    logger = logging.getLogger(ROOT)
    for handler in [h for h in logger.handlers if isinstance(h, ConsoleHandler)]:
        logger.removeHandler(handler)
    handler = ConsoleHandler()
    handler.setFormatter(logging.Formatter("%(message)s"))
    logger.addHandler(handler)
    logger.setLevel(LEVELS[max(-1, min(1, verbosity))])
    return logger


@contextlib.contextmanager
def quieter(*modules: str, level: int = logging.WARNING) -> Iterator[None]:
    """Inside the block, the loggers of ``modules`` report only from ``level`` up (a command that runs
    other commands' functions keeps their progress lines out of its own output; warnings still show)."""
    loggers = [get_logger(m) for m in modules]
    previous = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(max(level, lg.getEffectiveLevel()))
    try:
        yield
    finally:
        for lg, old in zip(loggers, previous):
            lg.setLevel(old)
