"""Periodic jobs (inbox sweep, outbox dispatch, dunning run, nightly reconciliation) work row by row
or practice by practice, each in its own savepoint: one that raises is recorded on its row, logged
by its ids, and the job goes on with the next. These two helpers say what failed."""

from __future__ import annotations

import logging
import traceback


def error_text(exc: BaseException, *, limit: int = 2000) -> str:
    """The error as a row keeps it for a manager (admin): type and message, cut to the column. NUL
    characters are dropped: PostgreSQL text refuses them, and the row must still save."""
    return f"{type(exc).__name__}: {exc}".replace("\x00", "")[:limit]


def log_failure(logger: logging.Logger, message: str, *args, exc: BaseException) -> None:
    """Log a failure by ids: `message % args`, the exception's type and the frames it came through.
    Never the exception's message: it may quote the payload (names, phone numbers, treatments)."""
    frames = "".join(traceback.format_list(traceback.extract_tb(exc.__traceback__)))
    logger.error(f"{message} ({type(exc).__name__})\n%s", *args, frames.rstrip())
