"""A former member who joins again online: the hosted page made a new customer at the processor for
the new subscription; her card updates (her page's "update my card", a dunning link) go to that
customer, the one her membership is charged on, not to the one of her old, ended subscription."""

import pytest
from django.urls import reverse
from django.utils import timezone

from integrations import inbox
from memberships import services
from memberships.models import Member, Membership, MembershipStatus
from tests.factories import MemberFactory, active_membership
from tests.portal.me_support import sign_in
from tests.support.stripe_events import post_event

from .join_support import form, online, processor  # noqa: F401  (fixtures)
from .test_join_confirmed import completed, first_invoice, start

pytestmark = pytest.mark.django_db


def test_a_former_member_joining_again_updates_her_card_on_the_customer_she_is_charged_on(
        client, online, processor, monkeypatch):  # noqa: F811
    nora = MemberFactory(practice=online["practice"], first_name="Nora", last_name="Newman",
                         email="nora.newman@example.com", processor_customer_id="cus_old_subscription")
    old = active_membership(tier=online["tier"], member=nora)
    services.cancel_membership(membership=old, actor=services.Actor.system(), idempotency_key="left",
                               now=timezone.now())
    attempt = start(client, online)
    post_event(client, completed(attempt))                      # the checkout's customer: cus_join0001
    post_event(client, first_invoice())
    inbox.process_due(now=timezone.now())
    assert Membership.objects.get(member=nora, status=MembershipStatus.ACTIVE)
    assert Member.objects.get(pk=nora.pk).processor_customer_id == "cus_join0001"

    seen = {}

    class Processor:
        def card_update_url(self, *, customer_id, return_url):
            seen["customer_id"] = customer_id
            return "https://billing.example/session/abc"

    monkeypatch.setattr("integrations.processors.member_card.get_dunning_processor", lambda: Processor())
    sign_in(client, Member.objects.get(pk=nora.pk))
    client.post(reverse("portal:me:card"))
    assert seen["customer_id"] == "cus_join0001"
