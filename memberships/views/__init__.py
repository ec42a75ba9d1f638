"""The staff pages (server-rendered). Thin: each checks its permission, calls a selector or a
service (which writes the audit row of a change) and renders; a page that shows member data audits
each member shown (`common.audit_view`)."""

from .audit_trail import who_looked
from .chart import chart, home, redeem, reverse
from .lifecycle import cancel, change_tier, enroll, enroll_new, pause, resume

__all__ = [
    "cancel", "change_tier", "chart", "enroll", "enroll_new", "home", "pause", "redeem", "resume", "reverse",
    "who_looked",
]
