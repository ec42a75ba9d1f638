"""A join paid by a bank debit (ACH: up to about 4 business days; SEPA: up to 14 days): its
subscription's own events (the subscription updated, its first invoice paid) come in at once, for a
subscription no membership has until the payment settles. They wait for the enrollment however long
the settling takes, instead of failing when their attempts run out (3.4 to 6.7 days), and apply once,
exactly once, when she is enrolled; the join's return page says her bank payment is on its way all
along. Once the delayed payment fails, they end as any event of an unknown subscription does."""

from datetime import timedelta
from itertools import permutations

import pytest
from django.db.models import Min
from django.utils import timezone

from integrations import inbox
from integrations.models import InboundEvent, InboundStatus
from memberships.models import EntitlementBalance, JoinAttempt, Membership, MembershipStatus
from tests.integrations.test_stripe_docs_checkout import SUB, completed_unpaid, not_settled, settled
from tests.portal.join_support import form, online, processor  # noqa: F401  (fixtures)
from tests.support.stripe_events import load_event, post_event

pytestmark = pytest.mark.django_db

ON_ITS_WAY = "Your bank payment is on its way"


def subscription_events() -> dict[str, dict]:
    return {"subscription": load_event("customer_subscription_updated_active.json", subscription_ref=SUB),
            "first invoice": load_event("invoice_paid_first.json", subscription_ref=SUB)}


def start(client, online):
    assert client.post("/join/glow/", form(online), REMOTE_ADDR="203.0.113.9").status_code == 302
    return JoinAttempt.objects.get()


def return_page(client, attempt) -> str:
    return client.get(f"/join/glow/done/{attempt.ref}/").content.decode()


def run_inbox_until(until, *, now, each=lambda: None):
    """The inbox's worker over the days: what is due now, then every waiting event retried when it
    falls due, up to `until`."""
    for _ in range(1000):
        inbox.process_due(now=now)
        each()
        due = InboundEvent.objects.filter(status=InboundStatus.RECEIVED).aggregate(at=Min("next_attempt_at"))["at"]
        if due is None or due > until:
            return
        now = max(now, due)
    raise AssertionError("the inbox never stopped retrying")


def waiting_for_the_subscription():
    return InboundEvent.objects.filter(event_type__in=["customer.subscription.updated", "invoice.paid"])


@pytest.mark.parametrize("order", list(permutations(["subscription", "first invoice", "settled"])))
def test_a_ten_day_settlement_leaves_no_failed_event_and_enrolls_once(client, online, processor, settings, order):
    attempt = start(client, online)
    begun = timezone.now()
    post_event(client, completed_unpaid(attempt.ref))
    run_inbox_until(begun, now=begun)
    events = dict(subscription_events(), settled=settled(attempt.ref))
    at = begun
    for name in order:
        if name == "settled":          # the debit clears on day 10; the others may come before or after
            at = begun + timedelta(days=10)

            def on_its_way():
                assert ON_ITS_WAY in return_page(client, attempt)
                assert not InboundEvent.objects.filter(status=InboundStatus.FAILED).exists()

            run_inbox_until(at, now=begun, each=on_its_way)
            if waiting_for_the_subscription().exists():
                assert max(e.attempts for e in waiting_for_the_subscription()) > settings.INBOX_MAX_ATTEMPTS
        post_event(client, events[name])
        post_event(client, events[name])                 # Stripe delivers again: stored once
        run_inbox_until(at, now=at)
    membership = Membership.objects.get()
    assert membership.status == MembershipStatus.ACTIVE and membership.processor_subscription_id == SUB
    assert {b.service.code: b.balance for b in EntitlementBalance.objects.filter(membership=membership)} == \
        {"hydrafacial": 1, "product-credit": 5000}      # the first invoice's grant, once
    assert set(InboundEvent.objects.values_list("status", flat=True)) <= {InboundStatus.PROCESSED,
                                                                         InboundStatus.IGNORED}
    assert "Your membership is active" in return_page(client, attempt)


def test_after_the_delayed_payment_fails_the_waiting_events_end_as_before(client, online, processor, settings):
    attempt = start(client, online)
    begun = timezone.now()
    post_event(client, completed_unpaid(attempt.ref))
    for event in subscription_events().values():
        post_event(client, event)
    run_inbox_until(begun + timedelta(days=3), now=begun)
    assert not InboundEvent.objects.filter(status=InboundStatus.FAILED).exists()
    post_event(client, not_settled(attempt.ref))
    run_inbox_until(begun + timedelta(days=10), now=begun + timedelta(days=3))
    assert not Membership.objects.exists()
    assert set(waiting_for_the_subscription().values_list("status", flat=True)) == {InboundStatus.FAILED}
    assert all(f"subscription {SUB} " in e.error for e in waiting_for_the_subscription())
    assert ON_ITS_WAY not in return_page(client, attempt)


def test_a_settlement_that_never_comes_fails_the_events_after_three_weeks(client, online, processor):
    attempt = start(client, online)
    begun = timezone.now()
    post_event(client, completed_unpaid(attempt.ref))
    for event in subscription_events().values():
        post_event(client, event)
    run_inbox_until(begun + timedelta(days=20), now=begun)
    assert set(waiting_for_the_subscription().values_list("status", flat=True)) == {InboundStatus.RECEIVED}
    run_inbox_until(begun + timedelta(days=23), now=begun + timedelta(days=20))
    assert set(waiting_for_the_subscription().values_list("status", flat=True)) == {InboundStatus.FAILED}
    assert not Membership.objects.exists()
