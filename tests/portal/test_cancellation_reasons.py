"""The manager dashboard counts the reasons members gave for cancelling on their own page."""

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from billing.metrics import cancellation_reasons
from memberships.services import Actor
from memberships.services.member_requests import file_member_request
from tests.factories import PracticeFactory, active_membership, glow_tier

pytestmark = pytest.mark.django_db


def _cancel(membership, reason, *, now=None):
    return file_member_request(membership=membership, kind="cancel", reason=reason, actor=Actor.member(membership.member),
                               idempotency_key=f"c:{membership.pk}", now=now or timezone.now())


def test_the_dashboard_counts_cancellation_reasons(client, glow, manager):
    tier = glow[0]
    for reason in ("price", "price", "moving"):
        _cancel(active_membership(tier=tier), reason)
    _cancel(active_membership(tier=tier), "price", now=timezone.now() - timedelta(days=400))   # too old
    other = PracticeFactory(slug="elsewhere")
    _cancel(active_membership(tier=glow_tier(other)[0]), "moving")                             # not ours
    assert cancellation_reasons(practice_id=tier.practice_id, now=timezone.now()) == [("The price", 2),
                                                                                      ("Moving away", 1)]
    client.force_login(manager)
    html = client.get(reverse("manager:dashboard")).content.decode()
    section = html[html.index('data-testid="cancellation-reasons"'):]
    assert "<td>The price</td><td>2</td>" in section and "<td>Moving away</td><td>1</td>" in section
