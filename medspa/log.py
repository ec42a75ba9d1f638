"""Logging helpers for the console the settings configure."""

from __future__ import annotations

import logging


class ClientErrorsOnOneLine(logging.Filter):
    """A 4xx answer (a 403 to a role without the permission, a 404, a 405) is the client's mistake, not
    ours: one warning line — Django's own "Forbidden (Permission denied): /manage/" — without the
    traceback Django attaches to it. 5xx keep theirs."""

    def filter(self, record: logging.LogRecord) -> bool:
        status = getattr(record, "status_code", None)
        request = getattr(record, "request", None)
        if status == 503 and getattr(request, "path", "") == "/healthz":
            # The health check answering "unhealthy" is its job, not an error of ours: a monitor
            # probing every few seconds while the worker is down must not fill the log (its body
            # says what is wrong).
            return False
        if isinstance(status, int) and 400 <= status < 500 and record.exc_info:
            record.exc_info = None
            record.exc_text = None
            if record.levelno > logging.WARNING:
                record.levelno, record.levelname = logging.WARNING, logging.getLevelName(logging.WARNING)
        return True
