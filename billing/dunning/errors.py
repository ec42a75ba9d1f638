"""Dunning's domain errors (each with a stable code, like the ledger's)."""

from __future__ import annotations

from memberships.errors import LedgerError


class InvalidPolicy(LedgerError):
    code = "invalid_dunning_policy"


class CaseClosed(LedgerError):
    code = "dunning_case_closed"
    http_status = 409


class MessageNotResendable(LedgerError):
    """A manager's redelivery of a member message that could not go now (the member replied STOP,
    the payment follow-up ended): the message says why."""

    code = "message_not_resendable"
    http_status = 409
