"""The staff pages (server-rendered). Thin: each checks its permission, calls a selector or a
service, writes the audit row and renders."""

from .chart import chart, home, redeem, reverse
from .lifecycle import cancel, change_tier, enroll, enroll_new, pause, resume

__all__ = [
    "cancel", "change_tier", "chart", "enroll", "enroll_new", "home", "pause", "redeem", "resume", "reverse",
]
