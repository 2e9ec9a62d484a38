"""Third-party notes about the install, not about the user's data, kept off the terminal for one block."""
from __future__ import annotations

import logging
import warnings
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def quiet(loggers: tuple[str, ...], warning_messages: tuple[str, ...] = ()) -> Iterator[None]:
    """The named loggers (and their children) at ERROR and the future and deprecation warnings whose message matches
    one of `warning_messages` (regular expressions) ignored, for the block's duration; levels and filters restored."""
    saved = [(logger, logger.level) for logger in map(logging.getLogger, loggers)]
    for logger, _ in saved:
        logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            for message in warning_messages:
                for category in (FutureWarning, DeprecationWarning):
                    warnings.filterwarnings("ignore", message=message, category=category)
            yield
    finally:
        for logger, level in saved:
            logger.setLevel(level)
