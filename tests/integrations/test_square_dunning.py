"""Dunning for a Square practice. Square does not retry a failed scheduled charge and its APIs cannot
pay an invoice, so the practice's policy leaves retries to Square (the policy page says why and keeps
the box ticked), its cases plan messages only, and the link in each message opens Square's page for
the open invoice, where the member pays it. Runs on SQLite and PostgreSQL."""

import re
from datetime import timedelta
from urllib.parse import urlparse

import pytest
from django.core import mail
from django.utils import timezone

from billing import dunning
from billing.dunning.errors import InvalidPolicy
from billing.dunning.links import card_update_link
from billing.dunning.policy import current_policy, update_dunning_policy
from billing.dunning.quiet import member_zone
from billing.models import (
    AttemptStatus,
    DunningAttempt,
    DunningCase,
    DunningCaseStatus,
    DunningPolicy,
    DunningStep,
    StepKind,
)
from integrations import outbox
from integrations.messaging import sms
from integrations.models import Delivery, DeliveryStatus
from memberships.models import AuditLog, AutomationStage
from memberships.models.practice import Processor
from memberships.services import Actor
from tests.billing.test_policy_page import form_data
from tests.integrations.test_square_end_to_end import at, deliver, enroll, work
from tests.support.clock import next_daytime
from tests.support.square_fixtures import square, square_env, square_fake  # noqa: F401  (fixtures)

pytestmark = pytest.mark.django_db

WHY = "no one can retry a Square invoice through its API"


def on_square(practice, stage=AutomationStage.DUNNING):
    practice.processor, practice.automation_stage = Processor.SQUARE, stage
    practice.save()
    return practice


# --- the policy ---------------------------------------------------------------------------------------

def test_a_square_practices_policy_page_keeps_retries_with_square_and_says_why(client, manager, glow):
    practice = on_square(glow[0].practice)
    client.force_login(manager)

    page = client.get("/manage/dunning/policy/").content.decode()
    [box] = re.findall(r"<input[^>]*name=\"use_processor_retries\"[^>]*>", page)
    assert "checked" in box and "disabled" in box
    assert WHY in page and "each later day sends that step" in page

    assert client.post("/manage/dunning/policy/", form_data()).status_code == 302     # the box is not sent
    current = DunningPolicy.objects.get(practice=practice, is_current=True)
    assert current.use_processor_retries is True and current.retry_offsets_days == [0, 2, 4]

    with pytest.raises(InvalidPolicy) as refused:
        update_dunning_policy(practice=practice, changes={"use_processor_retries": False},
                              actor=Actor.staff(manager), now=timezone.now())
    assert WHY in refused.value.context["errors"]["use_processor_retries"]
    assert DunningPolicy.objects.get(practice=practice, is_current=True).pk == current.pk


def test_a_practice_moving_to_square_gets_a_version_that_leaves_retries_to_square(glow):
    practice = glow[0].practice
    now = timezone.now()
    stripe_policy = current_policy(practice=practice, now=now)
    assert stripe_policy.use_processor_retries is False            # Stripe: our retries, on the policy's days

    on_square(practice)
    policy = current_policy(practice=practice, now=now)
    assert (policy.version, policy.use_processor_retries) == (stripe_policy.version + 1, True)
    assert policy.retry_offsets_days == stripe_policy.retry_offsets_days
    assert current_policy(practice=practice, now=now).pk == policy.pk          # once
    [audit] = AuditLog.objects.filter(action="dunning_policy_updated")
    assert audit.detail["changed"] == ["use_processor_retries"] and audit.user is None


# --- a failed charge, chased ----------------------------------------------------------------------------

@pytest.fixture
def square_member(glow, square, square_fake, settings, client):
    settings.SMS_BACKEND = "locmem"
    sms.outbox.clear()
    tier = glow[0]
    on_square(tier.practice)
    square_fake.now = at("2026-01-05")
    member, membership, sub_id = enroll(square, square_fake, tier)
    deliver(square_fake, client)
    work(square_fake.now)
    return member, membership, sub_id


def way_on(response) -> str | None:
    """Where our Square card page a link redirected to leads on after the card is saved (None: the
    redirect is not to that page)."""
    from integrations.processors.square_cards import read_card_page_token

    location = urlparse(response["Location"]).path
    if not location.startswith("/billing/card/square/"):
        return None
    read = read_card_page_token(location.rstrip("/").rsplit("/", 1)[-1])
    return read[1] if read else None


def failed_charge(fake, client, sub_id, *, day="2026-02-05", code="INSUFFICIENT_FUNDS"):
    fake.now = at(day)
    invoice = fake.bill(sub_id, fail_code=code)
    deliver(fake, client)
    work(fake.now)
    return DunningCase.objects.get(invoice_ref=invoice)


def test_a_failed_square_charge_is_chased_by_messages_whose_link_opens_the_invoice_page(square_member, square_fake,
                                                                                          client):
    member, membership, sub_id = square_member
    case = failed_charge(square_fake, client, sub_id)
    assert case.status == DunningCaseStatus.OPEN and not case.hard          # no decline code: soft
    assert case.policy.use_processor_retries is True
    kinds = set(DunningStep.objects.filter(case=case).values_list("kind", flat=True))
    assert StepKind.RETRY not in kinds and {StepKind.SMS, StepKind.EMAIL} <= kinds

    # Every step's messages go; no retry is ever asked of Square.
    morning = next_daytime(max(case.opened_at, square_fake.now), zone=str(member_zone(member)))
    for day in range(0, 6):            # the steps before the exhaustion (day 7)
        dunning.run_dunning(now=morning + timedelta(days=day))
        outbox.dispatch_due(now=morning + timedelta(days=day))
    assert len(sms.outbox) >= 2 and len(mail.outbox) >= 2
    assert not Delivery.objects.filter(destination="payment_retry").exists()
    assert not DunningAttempt.objects.filter(case=case).exists()

    # The link in the message opens our Square card page (the card Square charges from now on), which
    # leads on to Square's page for this open invoice, where it is paid.
    [link] = re.findall(r"https?://\S+/billing/card/\S+/", mail.outbox[-1].body)
    assert link.startswith(card_update_link(case.pk).split("/billing/card/")[0])
    calls = square_fake.calls("GET", "/v2/invoices/")
    opened = client.get(urlparse(link).path)
    assert opened.status_code == 302
    assert way_on(opened) == square_fake.invoices[case.invoice_ref]["public_url"]
    assert square_fake.calls("GET", "/v2/invoices/") == calls + 1         # read fresh at each click

    # The member pays there: Square reports it, the case is recovered, the link has nothing more to do.
    square_fake.now = at("2026-02-09")
    square_fake.pay_invoice(case.invoice_ref)
    deliver(square_fake, client)
    work(square_fake.now)
    case.refresh_from_db()
    assert case.status == DunningCaseStatus.RECOVERED
    page = client.get(urlparse(link).path)
    assert page.status_code == 200 and b"Nothing to update" in page.content


def test_square_down_or_an_invoice_cancelled_at_square_leaves_the_card_page_without_a_way_on(
        square_member, square_fake, client):
    member, membership, sub_id = square_member
    case = failed_charge(square_fake, client, sub_id)
    path = urlparse(card_update_link(case.pk)).path

    square_fake.fail_next(503, "SERVICE_UNAVAILABLE", "API_ERROR")
    down = client.get(path)
    assert down.status_code == 302 and way_on(down) == ""

    square_fake.invoices[case.invoice_ref]["status"] = "CANCELED"        # cancelled by hand at Square
    cancelled = client.get(path)
    assert cancelled.status_code == 302 and way_on(cancelled) == ""
    assert way_on(cancelled) is not None                                   # still our card page


def test_a_retry_asked_of_square_only_looks_at_the_invoice_and_never_charges(square_member, square_fake, client):
    """A retry step can still be made (a card-update retry): Square is asked nothing it cannot do —
    the invoice is read; unpaid, the attempt fails with its reason and the case goes on; paid, it is."""
    member, membership, sub_id = square_member
    case = failed_charge(square_fake, client, sub_id)
    payments = len(square_fake.payments)
    now = square_fake.now + timedelta(hours=1)

    dunning.retry_after_card_update(case=case, payment_method_ref="ccof:new-card", now=now)
    dunning.run_dunning(now=now)
    outbox.dispatch_due(now=now)
    [attempt] = DunningAttempt.objects.filter(case=case)
    assert (attempt.status, attempt.decline_code) == (AttemptStatus.FAILED, "no_retry_api")
    assert len(square_fake.payments) == payments and square_fake.invoices[case.invoice_ref]["status"] == "UNPAID"
    case.refresh_from_db()
    assert case.status == DunningCaseStatus.OPEN and not case.hard

    square_fake.pay_invoice(case.invoice_ref)            # paid on Square's page; its webhook not heard yet
    later = now + timedelta(hours=1)
    dunning.retry_after_card_update(case=case, payment_method_ref="ccof:other-card", now=later)
    dunning.run_dunning(now=later)
    outbox.dispatch_due(now=later)
    second = DunningAttempt.objects.filter(case=case).order_by("-number").first()
    assert second.status == AttemptStatus.PAID
    case.refresh_from_db()
    assert case.status == DunningCaseStatus.RECOVERED


def test_square_busy_during_a_retry_is_tried_again_with_backoff_and_answers_once(square_member, square_fake, client):
    member, membership, sub_id = square_member
    case = failed_charge(square_fake, client, sub_id)
    now = square_fake.now + timedelta(hours=1)
    dunning.retry_after_card_update(case=case, payment_method_ref="ccof:new-card", now=now)
    dunning.run_dunning(now=now)

    square_fake.fail_next(429, "RATE_LIMITED", "RATE_LIMIT_ERROR")
    outbox.dispatch_due(now=now)
    [delivery] = Delivery.objects.filter(destination="payment_retry")
    [attempt] = DunningAttempt.objects.filter(case=case)
    assert delivery.status == DeliveryStatus.RETRYING and "429" in delivery.last_error
    assert delivery.next_attempt_at > now
    assert attempt.status == AttemptStatus.REQUESTED

    outbox.dispatch_due(now=delivery.next_attempt_at)
    delivery.refresh_from_db()
    attempt.refresh_from_db()
    assert delivery.status == DeliveryStatus.DELIVERED
    assert (attempt.status, attempt.decline_code) == (AttemptStatus.FAILED, "no_retry_api")
