"""Domain errors: each carries a stable `code` that the API and the pages show."""

from __future__ import annotations


class LedgerError(Exception):
    code = "ledger_error"
    http_status = 400

    def __init__(self, message: str = "", **context):
        self.message = message or self.default_message()
        self.context = context
        super().__init__(self.message)

    def default_message(self) -> str:
        return self.code.replace("_", " ").capitalize()


class InvalidQuantity(LedgerError):
    code = "invalid_quantity"


class InsufficientBalance(LedgerError):
    code = "insufficient_balance"
    http_status = 409

    def default_message(self) -> str:
        return "Not enough balance left for this service."


class ServiceNotIncluded(LedgerError):
    code = "service_not_included"
    http_status = 409

    def default_message(self) -> str:
        return "The member's tier does not include this service."


class MembershipNotRedeemable(LedgerError):
    code = "membership_not_redeemable"
    http_status = 409


class NotRedeemableHere(MembershipNotRedeemable):
    """The tier's benefits are redeemable only at the member's home location, and this is not it."""

    code = "not_redeemable_here"


class IllegalTransition(LedgerError):
    code = "illegal_transition"
    http_status = 409


class ReasonRequired(LedgerError):
    code = "reason_required"


class NotAllowed(LedgerError):
    code = "not_allowed"
    http_status = 403


class AlreadyReversed(LedgerError):
    code = "already_reversed"
    http_status = 409


class NotReversible(LedgerError):
    code = "not_reversible"
    http_status = 409


class IdempotencyKeyReused(LedgerError):
    code = "idempotency_key_reused"
    http_status = 409

    def default_message(self) -> str:
        return "This idempotency key was already used for a different request."


class InvalidTier(LedgerError):
    code = "invalid_tier"


class DuplicateMember(LedgerError):
    code = "duplicate_member"
    http_status = 409


class StaleChart(LedgerError):
    """The balance changed since the chart the front desk redeemed from was opened (another desk, or
    the record, used it): check the balance and redeem again if it is still needed."""

    code = "stale_chart"
    http_status = 409
