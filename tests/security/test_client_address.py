"""The client's address comes from one function and the trusted-proxy setting: the audit log and
the login throttle record the client, not the proxy, and never an address the client wrote itself."""

import pytest
from axes.models import AccessAttempt
from django.test import RequestFactory
from django.urls import reverse

from memberships.client_ip import client_ip
from memberships.models import AuditLog
from tests.factories import ana_garcia

PROXY = "10.0.0.2"
CLIENT = "203.0.113.9"


@pytest.fixture
def member_with_glow(glow):
    return ana_garcia(glow[0])


def _request(remote="192.0.2.1", forwarded=None):
    extra = {"REMOTE_ADDR": remote}
    if forwarded is not None:
        extra["HTTP_X_FORWARDED_FOR"] = forwarded
    return RequestFactory().get("/", **extra)


@pytest.mark.parametrize("proxies, remote, forwarded, expected", [
    (0, "192.0.2.1", "198.51.100.4", "192.0.2.1"),                # no proxy: the header is the client's own word
    (1, PROXY, CLIENT, CLIENT),                                   # one proxy: the address it appended
    (1, PROXY, f"198.51.100.4, {CLIENT}", CLIENT),                # a forged left part is ignored
    (2, PROXY, f"198.51.100.4, {CLIENT}, 10.0.0.7", CLIENT),      # CDN + load balancer: second from the right
    (2, PROXY, CLIENT, PROXY),                                    # did not pass through both: the socket's
    (1, PROXY, "not-an-address", PROXY),                          # malformed: the socket's
    (1, PROXY, None, PROXY),
    (1, PROXY, "2001:db8::1", "2001:db8::1"),
])
def test_the_client_address_behind_trusted_proxies(settings, proxies, remote, forwarded, expected):
    settings.TRUSTED_PROXY_COUNT = proxies
    assert client_ip(_request(remote, forwarded)) == expected


def test_a_chart_view_behind_the_proxy_audits_the_client_not_the_proxy(client, front_desk, member_with_glow,
                                                                        settings):
    settings.TRUSTED_PROXY_COUNT = 1
    member = member_with_glow[0]
    client.force_login(front_desk)
    response = client.get(reverse("memberships:chart", args=[member.pk]), REMOTE_ADDR=PROXY,
                          HTTP_X_FORWARDED_FOR=f"198.51.100.66, {CLIENT}")
    assert response.status_code == 200
    assert set(AuditLog.objects.filter(action="view_chart").values_list("ip_address", flat=True)) == {CLIENT}


def test_without_a_proxy_a_forged_header_is_not_audited(client, front_desk, member_with_glow, settings):
    settings.TRUSTED_PROXY_COUNT = 0
    client.force_login(front_desk)
    client.get(reverse("memberships:chart", args=[member_with_glow[0].pk]), REMOTE_ADDR="192.0.2.1",
               HTTP_X_FORWARDED_FOR=CLIENT)
    assert set(AuditLog.objects.filter(action="view_chart").values_list("ip_address", flat=True)) == {"192.0.2.1"}


def test_the_login_throttle_counts_the_client_behind_the_proxy(client, front_desk, settings):
    settings.TRUSTED_PROXY_COUNT = 1
    client.post(reverse("memberships:login"), {"username": front_desk.username, "password": "wrong"},
                REMOTE_ADDR=PROXY, HTTP_X_FORWARDED_FOR=CLIENT)
    assert list(AccessAttempt.objects.values_list("ip_address", flat=True)) == [CLIENT]
