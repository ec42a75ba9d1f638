"""Hard and soft declines in Square's words (`square_events.HARD_DECLINES` / `SOFT_DECLINES`): every
code is one Square's SDK knows, none is both, a declined card becomes our PaymentDeclined hard or soft
by that table, an unknown code is soft, and a failed scheduled charge — which names no code — is a
soft failure whose case keeps its messages (and, at a processor that could, its retries)."""

import json
import typing
from pathlib import Path

import pytest
from square.core.api_error import ApiError
from square.types.error_code import ErrorCode

from billing.models import DunningCase
from integrations.processors.base import ChargeFailed, PaymentDeclined
from integrations.processors.square import translate_error
from integrations.processors.square_events import (
    FAILED_CHARGE,
    HARD_DECLINES,
    SOFT_DECLINES,
    is_hard_decline,
    parse_event,
)
from tests.integrations.test_square_end_to_end import at, deliver, enroll, work
from tests.integrations.test_square_end_to_end import world  # noqa: F401  (fixture)
from tests.support.square_fixtures import square, square_env, square_fake  # noqa: F401  (fixtures)

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "square"
SDK_CODES = set(typing.get_args(typing.get_args(ErrorCode)[0]))


def declined(code: str) -> PaymentDeclined:
    error = translate_error(ApiError(status_code=402, body={"errors": [
        {"category": "PAYMENT_METHOD_ERROR", "code": code, "detail": "Authorization error"}]}))
    assert isinstance(error, PaymentDeclined)
    return error


def test_every_code_of_the_table_is_squares_and_none_is_both_hard_and_soft():
    assert HARD_DECLINES <= SDK_CODES and SOFT_DECLINES <= SDK_CODES
    assert HARD_DECLINES.isdisjoint(SOFT_DECLINES)


@pytest.mark.parametrize("code,hard", [
    ("CARD_EXPIRED", True), ("CVV_FAILURE", True), ("INVALID_ACCOUNT", True), ("ADDRESS_VERIFICATION_FAILURE", True),
    ("CARD_DECLINED_CALL_ISSUER", True), ("CARD_DECLINED_VERIFICATION_REQUIRED", True), ("CARD_NOT_SUPPORTED", True),
    ("GENERIC_DECLINE", False), ("INSUFFICIENT_FUNDS", False), ("CARD_DECLINED", False), ("TRANSACTION_LIMIT", False),
    ("SOMETHING_NEW", False),
])
def test_a_declined_card_is_hard_or_soft_by_squares_code(code, hard):
    error = declined(code)
    assert (error.hard, error.failure_code, error.decline_code) == (hard, code, code)
    assert is_hard_decline(code.lower()) is hard                     # whatever the case Square writes it in


def test_a_failed_scheduled_charge_names_no_code_and_is_soft():
    fact = parse_event(json.loads((FIXTURES / "invoice.scheduled_charge_failed.json").read_text())).fact
    assert isinstance(fact, ChargeFailed)
    assert (fact.hard, fact.decline_code, fact.failure_code) == (False, "", FAILED_CHARGE)


@pytest.mark.django_db
@pytest.mark.parametrize("card_error", ["CARD_EXPIRED", "INSUFFICIENT_FUNDS"])
def test_whatever_squares_payment_said_the_failed_charge_opens_a_soft_case(world, square, square_fake, client,
                                                                              card_error):
    """The payment behind a failed scheduled charge carries Square's code (the fake keeps it), but the
    webhook does not, and no API links the invoice to that payment: the case is soft, its messages
    ask the member to pay (the card page or the invoice page), never 'no retries: hard decline'."""
    member, m, sub_id = enroll(square, square_fake, world["tier"])
    deliver(square_fake, client)
    work(square_fake.now)
    square_fake.now = at("2026-02-05")
    invoice = square_fake.bill(sub_id, fail_code=card_error)
    [payment] = [p for p in square_fake.payments.values() if p["status"] == "FAILED"]
    assert payment["card_details"]["errors"][0]["code"] == card_error
    deliver(square_fake, client)
    work(square_fake.now)

    case = DunningCase.objects.get(invoice_ref=invoice)
    assert case.hard is False
