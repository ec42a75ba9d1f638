"""An invoice cancelled or voided at the processor after its dunning case was exhausted: the case keeps
its outcome, but a card-update text of the last step still waiting to leave (held since the member
replied, until the front desk reads the reply) is not sent once nothing is owed any more, and the
lapsed membership is active again."""

from datetime import timedelta

import pytest

from billing import services as billing
from billing.facts import ChargeFailed, InvoiceForgiven
from billing.forgiveness import record_invoice_forgiven
from billing.models import DunningCase, DunningCaseStatus, DunningMessage, MessageChannel, MessageStatus
from integrations import outbox
from integrations.messaging import holds
from memberships.models import MembershipStatus
from memberships.services.common import Actor

from .conftest import T0, sms_to, walk

pytestmark = pytest.mark.django_db

DAY = timedelta(days=1)
INVOICE = "inv_sq_exhausted"


def _invoice(membership, at):
    return dict(processor="square", invoice_ref=INVOICE, subscription_ref="", customer_ref="",
                membership_ref=billing.membership_ref_for(membership), amount_cents=19900, currency="usd",
                attempt_count=1, period_start=None, period_end=None, created=int(T0.timestamp()),
                event_created=int(at.timestamp()))


def status_of(membership):
    return membership.__class__.objects.get(pk=membership.pk).status


def test_a_text_still_waiting_after_exhaustion_is_not_sent_once_the_invoice_is_cancelled(membership, manager):
    member = membership.member
    billing.record_charge_failed(charge=ChargeFailed(**_invoice(membership, T0), failure_code="card_declined",
                                                     decline_code="insufficient_funds"), now=T0)
    walk(T0, T0 + 6 * DAY)
    texts = len(sms_to(member))
    # She replies to a text; her automated texts wait until the front desk reads the reply.
    hold = holds.open_hold(member=member, inbound=None, text="I'll sort it out with the clinic", reason="review",
                           now=T0 + 6 * DAY)
    last_step = T0 + 7 * DAY                              # the last reminders, the last retry and the exhaustion
    walk(last_step, last_step)
    case = DunningCase.objects.get(invoice_ref=INVOICE)
    assert case.status == DunningCaseStatus.EXHAUSTED and status_of(membership) == MembershipStatus.LAPSED
    waiting = DunningMessage.objects.get(case=case, channel=MessageChannel.SMS, status=MessageStatus.PENDING)

    # The clinic cancels the invoice at Square; then the desk reads her reply and lets texts go again.
    cancelled_at = last_step + timedelta(hours=1)
    record_invoice_forgiven(fact=InvoiceForgiven(**_invoice(membership, cancelled_at), how="cancelled",
                                                 standing_reported=False, forgiven_at=cancelled_at),
                            now=cancelled_at)
    holds.clear_hold(hold_id=hold.pk, opted_out=False, actor=Actor.staff(manager), now=cancelled_at)
    outbox.dispatch_due(now=cancelled_at + timedelta(minutes=31))
    walk(cancelled_at + timedelta(minutes=31), last_step + 2 * DAY)

    assert len(sms_to(member)) == texts                   # nothing asks her to pay what nobody expects
    assert DunningMessage.objects.get(pk=waiting.pk).status == MessageStatus.SKIPPED
    assert status_of(membership) == MembershipStatus.ACTIVE
    case.refresh_from_db()
    assert case.status == DunningCaseStatus.EXHAUSTED     # the case keeps its outcome
    summaries = list(membership.events.values_list("summary", flat=True))
    assert "Invoice cancelled at Square on Jan 12, 2026 — no payment expected" in summaries
