"""A member-page link clicked in several tabs (or by a mail scanner and the member) at the same
instant on PostgreSQL: one browser gets the member's page, the others the "already used" page, and
the sign-in is audited once."""

import pytest
from django.test import Client
from django.urls import reverse

from memberships.models import AuditLog
from tests.factories import ana_garcia
from tests.memberships.ledger_checks import hammer
from tests.portal.me_support import send_link

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def test_one_link_opened_at_once_in_four_browsers_opens_one_session(glow):
    member, _ = ana_garcia(glow[0])
    [path] = send_link(member.email)
    clients = [Client() for _ in range(4)]
    for client in clients:
        assert client.get(path).status_code == 200                  # each shows the button first

    results, errors = hammer(lambda i: clients[i].post(path).status_code, 4)
    assert errors == [] and sorted(results) == [302, 410, 410, 410]
    opened = [client for client in clients if client.get(reverse("portal:me:page")).status_code == 200]
    assert len(opened) == 1
    assert AuditLog.objects.filter(member=member, action="member_signin").count() == 1
