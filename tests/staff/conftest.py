import re

import pytest
from django.utils import timezone

from memberships import services
from tests.factories import ana_garcia


@pytest.fixture
def member_with_glow(glow):
    """Ana Garcia on Glow, first cycle paid: 1 HydraFacial, $50 product credit."""
    tier, facial, credit = glow
    member, membership = ana_garcia(tier)
    return member, membership, facial, credit


def form_value(html: str, name: str) -> str:
    match = re.search(rf'name="{name}"[^>]*value="([^"]*)"', html) or re.search(
        rf'value="([^"]*)"[^>]*name="{name}"', html)
    assert match, f"no field {name} in the page"
    return match.group(1)


@pytest.fixture
def now():
    return timezone.now()


def redeem_post(client, member, service, *, quantity="1", token=None, version=None, html=None):
    from django.urls import reverse

    if html is None:
        html = client.get(reverse("memberships:chart", args=[member.pk])).content.decode()
    data = {
        "service": service.pk,
        "quantity": quantity,
        "token": token or form_value(html, "token"),
        "version": version if version is not None else form_value(html, "version"),
    }
    return client.post(reverse("memberships:redeem", args=[member.pk]), data), data


def staff_actor(user):
    return services.Actor.staff(user)
