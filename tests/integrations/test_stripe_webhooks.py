"""POST /webhooks/stripe/: signature, store once, answer at once; processing converges whatever the
order and however often Stripe delivers. Events are recorded current-shape fixtures."""

import itertools
import random
import time
from datetime import timedelta

import pytest
from django.utils import timezone

from billing import dunning_hooks
from billing.models import Invoice, InvoiceStatus
from integrations import inbox
from integrations.models import InboundEvent, InboundStatus
from memberships import services
from memberships.models import EntitlementBalance, Event, EventKind, LedgerEntry, MembershipStatus
from tests.factories import MemberFactory
from tests.support.stripe_events import FIXTURE_SUBSCRIPTION, load_event, post_event, serve_stripe_reads

pytestmark = pytest.mark.django_db


@pytest.fixture
def membership(glow):
    tier, _, _ = glow
    member = MemberFactory(practice=tier.practice)
    return services.enroll_member(member=member, tier=tier, actor=services.Actor.system(),
                                  idempotency_key=f"enroll:{member.pk}", now=timezone.now(),
                                  processor_subscription_id=FIXTURE_SUBSCRIPTION)


@pytest.fixture(autouse=True)
def stripe_reads(settings, httpserver):
    """A failed invoice's decline is read from the processor (recorded: insufficient funds)."""
    return serve_stripe_reads(settings, httpserver, invoice_payments="invoice_payments_insufficient_funds.json")


@pytest.fixture
def handoffs(monkeypatch):
    """What dunning receives: (hand-off name, invoice ref, kwargs) per call."""
    seen = []
    original_failed, original_succeeded = dunning_hooks.charge_failed, dunning_hooks.charge_succeeded

    def failed(*, invoice, membership, **kw):
        seen.append(("failed", invoice.processor_invoice_id, kw))
        return original_failed(invoice=invoice, membership=membership, **kw)

    def succeeded(*, invoice, membership, **kw):
        seen.append(("succeeded", invoice.processor_invoice_id, kw))
        return original_succeeded(invoice=invoice, membership=membership, **kw)

    monkeypatch.setattr(dunning_hooks, "charge_failed", failed)
    monkeypatch.setattr(dunning_hooks, "charge_succeeded", succeeded)
    return seen


def process_all(now=None):
    now = now or timezone.now()
    total = {}
    while True:
        counts = inbox.process_due(now=now)
        if not counts:
            return total
        for k, v in counts.items():
            total[k] = total.get(k, 0) + v


def balances(membership):
    return {b.service.code: b.balance for b in EntitlementBalance.objects.filter(membership=membership)
            .select_related("service")}


# --- the endpoint -------------------------------------------------------------------------------------

def test_bad_signature_is_refused_and_nothing_stored(client, membership):
    event = load_event("invoice_paid_first.json", membership=membership)
    assert post_event(client, event, secret="whsec_wrong").status_code == 400
    response = client.post("/webhooks/stripe/", data=b"{}", content_type="application/json")
    assert response.status_code == 400 and response.json()["code"] == "invalid_signature"
    assert InboundEvent.objects.count() == 0


def test_signature_older_than_five_minutes_is_refused(client, membership):
    event = load_event("invoice_paid_first.json", membership=membership)
    assert post_event(client, event, timestamp=int(time.time()) - 301).status_code == 400
    assert post_event(client, event, timestamp=int(time.time()) - 200).status_code == 200
    assert InboundEvent.objects.count() == 1


def test_event_stored_once_however_often_it_is_delivered(client, membership):
    event = load_event("invoice_paid_first.json", membership=membership)
    first = post_event(client, event)
    assert first.status_code == 200 and first.json()["status"] == "received"
    again = post_event(client, event)
    assert again.status_code == 200 and again.json()["duplicate"] is True
    row = InboundEvent.objects.get()
    assert (row.source, row.event_id, row.event_type) == ("stripe", event["id"], "invoice.paid")
    assert row.payload["data"]["object"]["id"] == event["data"]["object"]["id"]


def test_unknown_event_types_are_stored_and_ignored(client):
    event = load_event("customer_created_unhandled.json")
    assert post_event(client, event).status_code == 200
    row = InboundEvent.objects.get()
    assert row.status == InboundStatus.IGNORED
    assert process_all() == {}


def test_a_nul_character_in_a_signed_body_is_400_and_nothing_stored(client, membership):
    """PostgreSQL's jsonb cannot hold U+0000: refused at the door with a JSON code, never a 500."""
    event = load_event("invoice_paid_first.json", membership=membership)
    event["data"]["object"]["description"] = "bad\x00byte"
    response = post_event(client, event)
    assert response.status_code == 400 and response.json()["code"] == "invalid_payload"
    assert InboundEvent.objects.count() == 0


def test_other_http_methods_are_not_allowed(client):
    assert client.get("/webhooks/stripe/").status_code == 405


# --- processing ---------------------------------------------------------------------------------------

def test_first_paid_invoice_seeds_the_balance_once(client, membership, handoffs):
    for name in ["invoice_paid_first.json", "invoice_payment_succeeded_first.json"]:
        post_event(client, load_event(name, membership=membership))
        post_event(client, load_event(name, membership=membership))
    assert process_all() == {"processed": 2}
    membership.refresh_from_db()
    assert membership.status == MembershipStatus.ACTIVE and membership.cycle_number == 1
    assert balances(membership) == {"hydrafacial": 1, "product-credit": 5000}
    invoice = Invoice.objects.get()
    assert (invoice.status, invoice.amount_paid_cents, invoice.processor_invoice_id) == (
        InvoiceStatus.PAID, 19900, "in_1SXfixtureFirst01")
    assert invoice.period_end - invoice.period_start == timedelta(days=30)
    assert [h[0] for h in handoffs] == ["succeeded"]
    assert Event.objects.filter(membership=membership, kind=EventKind.CHARGE_SUCCEEDED).count() == 1
    assert InboundEvent.objects.filter(status=InboundStatus.PROCESSED, practice=membership.member.practice).count() == 2


def test_failed_renewal_marks_past_due_and_hands_over_to_dunning(client, membership, handoffs):
    post_event(client, load_event("invoice_paid_first.json", membership=membership))
    post_event(client, load_event("invoice_payment_failed_renewal.json", membership=membership))
    process_all()
    membership.refresh_from_db()
    assert membership.status == MembershipStatus.PAST_DUE
    failed = Event.objects.get(membership=membership, kind=EventKind.PAYMENT_FAILED)
    assert failed.payload["amount_cents"] == 19900 and failed.payload["attempt_count"] == 1
    invoice = Invoice.objects.get(processor_invoice_id="in_1SXfixtureRenew01")
    assert invoice.status == InvoiceStatus.OPEN and invoice.attempt_count == 1 and not invoice.hard_decline
    assert invoice.last_decline_code == "insufficient_funds"   # read from the invoice's PaymentIntent
    assert invoice.next_payment_attempt is not None
    assert [(h[0], h[2].get("hard")) for h in handoffs] == [("succeeded", None), ("failed", False)]
    # a second attempt is a new hand-off; a replay of the first is not
    post_event(client, load_event("invoice_payment_failed_renewal.json", membership=membership, event_suffix="r"))
    post_event(client, load_event("invoice_payment_failed_renewal_attempt2.json", membership=membership))
    process_all()
    assert [h[2]["attempt_count"] for h in handoffs if h[0] == "failed"] == [1, 2]


def test_recovered_payment_marks_active_and_refills_once(client, membership, handoffs):
    for name in ["invoice_paid_first.json", "invoice_payment_failed_renewal.json",
                 "invoice_paid_renewal_recovered.json"]:
        post_event(client, load_event(name, membership=membership))
        process_all()
    membership.refresh_from_db()
    assert membership.status == MembershipStatus.ACTIVE and membership.cycle_number == 2
    # Glow: the facial carries over (cap 2); product credit does not.
    assert balances(membership) == {"hydrafacial": 2, "product-credit": 5000}
    assert handoffs[-1][0] == "succeeded" and handoffs[-1][2]["recovered"] is True
    assert Event.objects.filter(membership=membership, kind=EventKind.RECOVERED).count() == 1


def failure_codes(invoice_ref="in_1SXfixtureRenew01"):
    """(failure code, decline code, hard) as the mirrored invoice holds them."""
    invoice = Invoice.objects.get(processor_invoice_id=invoice_ref)
    return invoice.last_failure_code, invoice.last_decline_code, invoice.hard_decline


def test_older_api_shape_with_a_hard_decline(client, membership, handoffs):
    post_event(client, load_event("invoice_paid_first.json", membership=membership))
    post_event(client, load_event("invoice_payment_failed_legacy_hard.json", membership=membership))
    process_all()
    assert failure_codes() == ("card_declined", "lost_card", True)
    assert handoffs[-1][2]["hard"] is True and handoffs[-1][2]["decline_code"] == "lost_card"


def test_action_required_is_a_hard_failure_until_the_member_acts(client, membership, handoffs):
    post_event(client, load_event("invoice_paid_first.json", membership=membership))
    post_event(client, load_event("invoice_payment_action_required_renewal.json", membership=membership))
    process_all()
    membership.refresh_from_db()
    assert membership.status == MembershipStatus.PAST_DUE
    assert Event.objects.filter(membership=membership, kind=EventKind.PAYMENT_ACTION_REQUIRED).count() == 1
    assert handoffs[-1][2]["action_required"] is True and handoffs[-1][2]["hard"] is True


def test_subscription_deleted_at_the_processor_cancels_and_freezes(client, membership):
    post_event(client, load_event("invoice_paid_first.json", membership=membership))
    post_event(client, load_event("customer_subscription_deleted.json", membership=membership))
    process_all()
    # a stale "past due" update after the deletion changes nothing
    post_event(client, load_event("customer_subscription_updated_past_due.json", membership=membership))
    process_all()
    membership.refresh_from_db()
    assert membership.status == MembershipStatus.CANCELLED
    assert membership.processor_subscriptions.get().status == "canceled"
    assert LedgerEntry.objects.filter(membership=membership, kind="freeze").count() == 2


def test_pause_reported_by_the_processor_is_mirrored_not_applied(client, membership):
    post_event(client, load_event("invoice_paid_first.json", membership=membership))
    post_event(client, load_event("customer_subscription_updated_paused.json", membership=membership))
    process_all()
    membership.refresh_from_db()
    assert membership.status == MembershipStatus.ACTIVE
    sub = membership.processor_subscriptions.get()
    assert sub.collection_paused is True and sub.price_ref == "price_1SXglowMonthly" and sub.amount_cents == 19900


def test_event_before_our_row_exists_is_retried_not_dropped(client, glow):
    tier, _, _ = glow
    member = MemberFactory(practice=tier.practice)
    event = load_event("invoice_paid_first.json", subscription_ref="sub_notYetKnown")
    post_event(client, event)
    now = timezone.now()
    assert process_all(now) == {"received": 1}
    row = InboundEvent.objects.get()
    assert row.status == InboundStatus.RECEIVED and row.error.startswith("waiting")
    assert row.next_attempt_at > now
    membership = services.enroll_member(member=member, tier=tier, actor=services.Actor.system(),
                                        idempotency_key="e1", now=now, processor_subscription_id="sub_notYetKnown")
    assert process_all(now) == {}                       # not due yet
    assert process_all(now + timedelta(hours=1)) == {"processed": 1}
    membership.refresh_from_db()
    assert membership.status == MembershipStatus.ACTIVE and balances(membership)["hydrafacial"] == 1


def test_unknown_object_gives_up_after_the_attempt_limit(client, settings):
    settings.INBOX_MAX_ATTEMPTS = 3
    post_event(client, load_event("invoice_paid_first.json", subscription_ref="sub_never"))
    now = timezone.now()
    for day in range(5):
        process_all(now + timedelta(days=day))
    row = InboundEvent.objects.get()
    assert row.status == InboundStatus.FAILED and row.attempts == 3 and "sub_never" in row.error


RENEWAL_STORY = [
    "invoice_payment_failed_renewal.json",
    "invoice_payment_failed_renewal_attempt2.json",
    "invoice_paid_renewal_recovered.json",
    "customer_subscription_updated_past_due.json",
    "customer_subscription_updated_active.json",
]


@pytest.mark.parametrize("seed", range(6))
def test_any_order_any_number_of_deliveries_converges(client, membership, seed):
    """Each event delivered twice, in a shuffled order, processed in between at random points."""
    post_event(client, load_event("invoice_paid_first.json", membership=membership))
    process_all()
    rng = random.Random(seed)
    deliveries = RENEWAL_STORY * 2
    rng.shuffle(deliveries)
    for name in deliveries:
        post_event(client, load_event(name, membership=membership))
        if rng.random() < 0.5:
            process_all()
    process_all()
    membership.refresh_from_db()
    assert membership.status == MembershipStatus.ACTIVE
    assert membership.cycle_number == 2
    assert balances(membership) == {"hydrafacial": 2, "product-credit": 5000}
    assert Invoice.objects.get(processor_invoice_id="in_1SXfixtureRenew01").status == InvoiceStatus.PAID
    assert InboundEvent.objects.count() == len(RENEWAL_STORY) + 1
    assert set(InboundEvent.objects.values_list("status", flat=True)) == {InboundStatus.PROCESSED}
    assert Event.objects.filter(membership=membership, kind=EventKind.REFILLED).count() == 2


def test_every_permutation_of_the_first_charge_and_a_failure_converges(client, glow):
    tier, _, _ = glow
    names = ["invoice_paid_first.json", "invoice_payment_failed_renewal.json", "invoice_paid_renewal_recovered.json"]
    for i, order in enumerate(itertools.permutations(names)):
        member = MemberFactory(practice=tier.practice)
        sub = f"sub_perm{i}"
        m = services.enroll_member(member=member, tier=tier, actor=services.Actor.system(),
                                   idempotency_key=f"e{i}", now=timezone.now(), processor_subscription_id=sub)
        for name in order:
            event = load_event(name, membership=m, subscription_ref=sub, event_suffix=f"_{i}")
            event["data"]["object"]["id"] += f"_{i}"
            post_event(client, event)
            process_all()
        m.refresh_from_db()
        assert m.status == MembershipStatus.ACTIVE, order
        assert m.cycle_number == 2, order


def run_queued_tasks():
    """What a qcluster worker does with the queue: take each task and run it."""
    from django_q.brokers import get_broker
    from django_q.signing import SignedPackage
    from django.utils.module_loading import import_string

    broker, ran = get_broker(), []
    while True:
        tasks = broker.dequeue()
        if not tasks:
            return ran
        for ack_id, package in tasks:
            task = SignedPackage.loads(package)
            import_string(task["func"])(*task["args"], **task["kwargs"])
            broker.acknowledge(ack_id)
            ran.append(task["func"].rsplit(".", 1)[-1])


@pytest.mark.parametrize("interval", [0, 0.3])
def test_the_queued_tasks_process_every_stored_event(client, membership, settings, interval,
                                                     django_capture_on_commit_callbacks):
    settings.INBOX_TRIGGER_SECONDS = interval
    inbox._last_trigger = 0.0
    with django_capture_on_commit_callbacks(execute=True):
        for name in ["invoice_paid_first.json", "invoice_payment_failed_renewal.json",
                     "invoice_paid_renewal_recovered.json"]:
            post_event(client, load_event(name, membership=membership))
    ran = run_queued_tasks()
    if interval == 0:
        assert ran == ["process_inbound_event"] * 3
    else:                                   # coalesced: drains, never more than one per event
        assert set(ran) == {"process_inbound_backlog"} and 1 <= len(ran) <= 3
    assert set(InboundEvent.objects.values_list("status", flat=True)) == {InboundStatus.PROCESSED}
    membership.refresh_from_db()
    assert membership.status == MembershipStatus.ACTIVE and membership.cycle_number == 2
