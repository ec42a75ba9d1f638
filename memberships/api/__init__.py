"""REST API under /api/v1/ (staff only, session or token auth): members, memberships with balances
and timeline, redemptions and their reversal, holds, tiers and services. Writes go through the
ledger's services; errors are JSON with a stable `code`; the OpenAPI schema is at /api/schema/.

Modules: `errors` (the exception handler, the bad-character check, the documented error bodies),
`base` (roles, scope, pagination, the Idempotency-Key, audit rows), `serializers`, and the views by
subject: `members`, `spending`, `catalogue`."""

from .base import CanRedeem, IsStaffRole
from .errors import exception_handler

__all__ = ["CanRedeem", "IsStaffRole", "exception_handler"]
