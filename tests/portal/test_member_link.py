"""The member page's sign-in: a single-use link valid 15 minutes, sent only to a member's own
address (texts only with consent), an identical answer whether or not the address matched, rate
limits, and a member session that ends after 30 idle minutes."""

from datetime import timedelta

import pytest
import time_machine
from django.core import mail
from django.urls import reverse
from django.utils import timezone

from memberships.models import AuditLog
from portal.me import links
from portal.models import LinkRequest, MemberLink
from tests.factories import MemberFactory, ana_garcia
from tests.portal.me_support import send_link, sign_in

pytestmark = pytest.mark.django_db


@pytest.fixture
def ana(glow):
    member, membership = ana_garcia(glow[0])
    return member


def test_a_link_opens_the_page_once_and_a_second_use_gets_a_plain_page(client, ana):
    [path] = send_link("Ana.Garcia@example.com")
    assert client.get(path).status_code == 200                      # a mail scanner's GET spends nothing
    assert client.post(path)["Location"] == reverse("portal:me:page")
    page = client.get(reverse("portal:me:page"))
    assert page.status_code == 200 and "Glow" in page.content.decode()
    again = client.__class__().post(path)
    assert again.status_code == 410 and "already been used" in again.content.decode()


def test_the_stored_row_holds_only_a_hash_of_the_token(ana):
    [path] = send_link(ana.email)
    token = path.rstrip("/").rsplit("/", 1)[-1]
    link = MemberLink.objects.get()
    assert token not in link.token_hash and link.token_hash == links.token_hash(token)
    assert LinkRequest.objects.get().address == ""                   # the address is cleared once handled


def test_a_link_expires_after_15_minutes(client, ana):
    sent_at = timezone.now()
    [path] = send_link(ana.email, now=sent_at)
    with time_machine.travel(sent_at + timedelta(minutes=15, seconds=1), tick=False):
        response = client.post(path)
    assert response.status_code == 410 and "expired" in response.content.decode()
    with time_machine.travel(sent_at + timedelta(minutes=14, seconds=50), tick=False):
        assert client.post(path).status_code == 302


def test_a_wrong_token_opens_nothing(client, ana):
    [path] = send_link(ana.email)
    forged = path[:-5] + "0000/"
    assert client.post(forged).status_code == 404
    assert client.get(reverse("portal:me:page"))["Location"] == reverse("portal:me:link")


def test_the_answer_is_identical_whether_or_not_the_address_matches(client, ana):
    matched = client.post(reverse("portal:me:link"), {"address": ana.email})
    unknown = client.post(reverse("portal:me:link"), {"address": "nobody@example.com"})
    assert matched.status_code == unknown.status_code == 200
    assert matched.content == unknown.content
    # the same work in the request: one stored request each, nothing read of the members
    assert LinkRequest.objects.count() == 2 and MemberLink.objects.count() == 0


def test_the_request_does_the_same_queries_matched_or_not(client, ana, django_assert_num_queries):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    counts = []
    for address in (ana.email, "nobody@example.com"):
        with CaptureQueriesContext(connection) as queries:
            client.post(reverse("portal:me:link"), {"address": address})
        counts.append([q["sql"].split(" ")[0] for q in queries.captured_queries])
    assert counts[0] == counts[1]


def test_texts_go_only_to_numbers_with_consent(ana, glow):
    quiet = MemberFactory(practice=ana.practice, phone="+14155550177", sms_consent=False)
    assert send_link(quiet.phone) == []
    assert len(send_link("(415) 555-0123")) == 1                  # Ana consented


def test_the_message_names_no_treatment_or_tier(ana):
    send_link(ana.email)
    body = mail.outbox[-1].body
    assert body.startswith(ana.practice.name)
    rest = body.replace(ana.practice.name, "")
    assert "Glow" not in rest and "HydraFacial" not in rest and "Ana" not in rest


def test_too_many_requests_for_one_address_are_refused_the_same_for_members_and_strangers(client, ana):
    for address in (ana.email, "stranger@example.com"):
        statuses = [client.post(reverse("portal:me:link"), {"address": address}).status_code for _ in range(4)]
        assert statuses == [200, 200, 200, 429]


def test_too_many_requests_from_one_address_are_refused(client, db, settings):
    settings.PORTAL_LINK_PER_IP_PER_HOUR = 2
    statuses = [client.post(reverse("portal:me:link"), {"address": f"p{i}@example.com"}).status_code
                for i in range(3)]
    assert statuses == [200, 200, 429]


def test_bad_input_gets_a_clear_error_and_stores_nothing(client, db):
    response = client.post(reverse("portal:me:link"), {"address": "not an address"})
    assert response.status_code == 400 and "email address or a mobile number" in response.content.decode()
    assert not LinkRequest.objects.exists()


def test_the_session_ends_after_30_idle_minutes(client, ana):
    start = timezone.now()
    with time_machine.travel(start, tick=False):
        sign_in(client, ana, now=start)
    with time_machine.travel(start + timedelta(minutes=29), tick=False):
        assert client.get(reverse("portal:me:page")).status_code == 200   # activity moves the clock on
    with time_machine.travel(start + timedelta(minutes=58), tick=False):
        assert client.get(reverse("portal:me:page")).status_code == 200
    with time_machine.travel(start + timedelta(minutes=88, seconds=1), tick=False):
        response = client.get(reverse("portal:me:page"))
    assert response.status_code == 302 and response["Location"].startswith(reverse("portal:me:link"))
    assert client.get(reverse("portal:me:page"))["Location"] == reverse("portal:me:link")


def test_the_member_idle_limit_is_its_own_setting(client, ana, settings):
    settings.PORTAL_SESSION_IDLE_MINUTES = 10
    start = timezone.now()
    with time_machine.travel(start, tick=False):
        sign_in(client, ana, now=start)
    with time_machine.travel(start + timedelta(minutes=10, seconds=1), tick=False):
        response = client.get(reverse("portal:me:page"))
    assert response["Location"] == reverse("portal:me:link_expired")
    assert "signed out after a while" in client.get(response["Location"]).content.decode()


def test_sign_in_and_every_view_are_audited_as_the_member(client, ana):
    sign_in(client, ana)
    client.get(reverse("portal:me:page"))
    rows = AuditLog.objects.filter(member=ana).order_by("id")
    assert [row.action for row in rows if row.action.startswith("member_")] == ["member_signin", "member_page_view"]
    assert all(row.user_id is None and row.detail.get("actor") == f"member {ana.pk}"
               for row in rows if row.action.startswith("member_"))


def test_sign_out_ends_the_session(client, ana):
    sign_in(client, ana)
    client.post(reverse("portal:me:sign_out"))
    assert client.get(reverse("portal:me:page"))["Location"] == reverse("portal:me:link")
