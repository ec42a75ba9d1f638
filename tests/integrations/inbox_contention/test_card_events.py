"""A card saved on the hosted page (`checkout.session.completed`) makes Stripe calls (the SetupIntent,
the customer, the subscription): it is applied on its own, outside a batch that holds memberships
locked, so the front desk's redemption for that member never waits on Stripe."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from django.db import connections
from django.utils import timezone

from integrations import inbox
from integrations.processors import sync
from memberships import services
from memberships.models import Membership
from tests.factories import active_membership
from tests.support.stripe_events import load_event
from tests.support.waiting import PATIENCE

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def test_the_front_desk_is_not_held_up_while_the_worker_talks_to_stripe(glow, monkeypatch):
    """The worker is inside its Stripe call, which answers only once the desk's redemption is done (or
    after PATIENCE): the redemption goes through while the worker still waits for Stripe."""
    tier, facial, _ = glow
    m = active_membership(tier=tier)
    Membership.objects.filter(pk=m.pk).update(processor_subscription_id="sub_card_1")
    event = load_event("checkout_session_completed_setup.json", membership=m)
    inbox.store_event(source=inbox.SOURCE_STRIPE, event=event, handled=True,
                      now=timezone.now() - timedelta(seconds=5))
    in_stripe, desk_done, desk_first = threading.Event(), threading.Event(), []

    class SlowStripe:
        def use_saved_card(self, **kwargs):
            in_stripe.set()
            desk_first.append(desk_done.wait(timeout=PATIENCE))
            return "pm_new"

    monkeypatch.setattr(sync, "get_processor", lambda: SlowStripe())

    worker_errors = []

    def worker():
        try:
            inbox.process_due(now=timezone.now())
        except Exception as exc:  # reported below
            worker_errors.append(exc)
        finally:
            connections.close_all()

    thread = threading.Thread(target=worker)
    thread.start()
    try:
        assert in_stripe.wait(PATIENCE)                  # the worker is in its Stripe call
        services.redeem_entitlement(membership=Membership.objects.get(pk=m.pk), service=facial,
                                    actor=services.Actor.system(), idempotency_key="desk-card-1", now=timezone.now())
    finally:
        desk_done.set()
        thread.join(PATIENCE)
    assert not worker_errors
    assert desk_first == [True], "the front desk's redemption waited for the worker's Stripe call to end"
