"""A member session is no staff login and no other member's: every URL of the route matrix
(tests/security/test_route_matrix.py, generated from the URL conf) requested by another member of
the practice signed in on their own page. Staff pages send them to the staff login, the API
refuses them, and no answer shows the world's member (Zelda Quixotic) or her number."""

import pytest
from django.test import Client
from django.urls import reverse

from tests.factories import MemberFactory, active_membership
from tests.portal.me_support import sign_in
from tests.security.test_route_matrix import ROUTES, URL_NAMES, _url, world  # noqa: F401 (the fixture)

# What a member session gets on the member's own pages (they take no member id: the session names him).
MEMBER_PAGES = {
    "portal:me:page": {200},
    "portal:me:request": {400},           # an empty form: refused, nothing filed
    "portal:me:card": {409},              # no card on file at the processor yet
    "portal:me:sign_out": {302},
    "portal:me:link": {200},
    "portal:me:link_expired": {200},
    "portal:me:open": {404},
}


def _expected(name, route):
    if name in MEMBER_PAGES:
        return MEMBER_PAGES[name]
    if route.access == "staff":
        return {302}
    if route.access == "api":
        return {401, 403}
    return set(route.ok)


@pytest.mark.django_db
def test_a_member_session_reaches_no_staff_url_and_no_other_member(world, settings):
    settings.PORTAL_LINK_PER_ADDRESS_PER_HOUR = settings.PORTAL_LINK_PER_IP_PER_HOUR = 1000  # a link per URL
    objects, _ = world
    zelda = objects["member"]
    bob = MemberFactory(practice=zelda.practice, first_name="Bob", last_name="Neighbour", email="bob@example.com",
                        phone="+14155550142")
    active_membership(tier=objects["tier"], member=bob)
    wrong = []
    for name in URL_NAMES:
        route = ROUTES.get(name)
        if route is None:
            continue
        client = Client()
        sign_in(client, bob)
        url = _url(name, route, objects)
        response = client.get(url) if route.method == "GET" else client.post(url, {})
        if response.status_code not in _expected(name, route):
            wrong.append(f"{route.method} {url}: {response.status_code}, expected {sorted(_expected(name, route))}")
        elif route.access == "staff" and not response["Location"].startswith(reverse("memberships:login")):
            wrong.append(f"{url}: redirected to {response['Location']}, not the staff login")
        body = response.content.decode(errors="replace")
        if "Quixotic" in body or "+14155550199" in body or "4155550199" in body:
            wrong.append(f"{url} shows another member to a member session")
    assert wrong == []


@pytest.mark.django_db
def test_the_member_page_is_the_signed_in_members_own(world):
    objects, _ = world
    zelda = objects["member"]
    bob = MemberFactory(practice=zelda.practice, first_name="Bob", email="bob@example.com")
    active_membership(tier=objects["tier"], member=bob)
    client = Client()
    sign_in(client, bob)
    body = client.get(reverse("portal:me:page")).content.decode()
    assert "Hello, Bob" in body and "Zelda" not in body


@pytest.mark.django_db
def test_a_staff_login_opens_no_member_page(client, world):
    objects, users = world
    client.force_login(users["front_desk"])
    assert client.get(reverse("portal:me:page"))["Location"] == reverse("portal:me:link")
