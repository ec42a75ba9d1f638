"""What the member sees on their own page and what they may do there: the balances in the chart's
words, what expires at the next renewal, holds, the next charge, history; requests that wait for
staff, or go through at once under the practice's self-serve setting."""

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from memberships import services
from memberships.models import AuditLog, MemberRequest, Membership, MembershipStatus
from tests.factories import ana_garcia
from tests.portal.me_support import sign_in

pytestmark = pytest.mark.django_db


@pytest.fixture
def ana(glow):
    member, membership = ana_garcia(glow[0])
    membership.current_period_end = timezone.now() + timedelta(days=20)
    membership.save(update_fields=["current_period_end"])
    return member, membership


def _page(client) -> str:
    response = client.get(reverse("portal:me:page"))
    assert response.status_code == 200
    return response.content.decode()


def _token(html: str) -> str:
    import re

    return re.search(r'name="token" value="([0-9a-f]{32})"', html).group(1)


def test_the_page_shows_tier_balances_rules_expiry_and_next_charge(client, ana, glow):
    member, membership = ana
    tier, facial, credit = glow
    services.reserve_entitlement(membership=membership, service=facial, actor=services.Actor.system(),
                                 idempotency_key="booked-1", now=timezone.now())
    sign_in(client, member)
    html = _page(client)
    assert "Glow" in html and "$199.00" in html and "Active" in html
    assert "carries over" in html.lower() or facial.benefits.get().rollover_in_words in html
    assert "Product credit: $50.00" in html                   # the credit expires at the renewal (no rollover)
    assert "held for a booked appointment" in html
    assert f"Next charge: <strong>$199.00</strong> on {membership.current_period_end.astimezone(member.practice.zone):%b %-d, %Y}" in html
    assert "Refill: HydraFacial" in html


def test_a_pause_request_waits_for_staff_and_the_member_sees_it(client, ana):
    member, membership = ana
    sign_in(client, member)
    html = _page(client)
    until = (timezone.now() + timedelta(days=30)).date()
    response = client.post(reverse("portal:me:request"), {"kind": "pause", "reason": "travel", "note": "Away in May",
                                                          "pause_until": until.isoformat(), "token": _token(html)})
    assert response.status_code == 302
    request = MemberRequest.objects.get()
    assert (request.status, request.kind, request.note) == ("pending", "pause", "Away in May")
    membership.refresh_from_db()
    assert membership.status == MembershipStatus.ACTIVE
    assert "Waiting for staff" in _page(client)


def test_a_repeated_form_files_one_request(client, ana):
    member, _ = ana
    sign_in(client, member)
    data = {"kind": "cancel", "reason": "price", "token": _token(_page(client))}
    client.post(reverse("portal:me:request"), data)
    client.post(reverse("portal:me:request"), data)
    assert MemberRequest.objects.count() == 1


def test_bad_input_is_refused_and_changes_nothing(client, ana):
    member, _ = ana
    sign_in(client, member)
    token = _token(_page(client))
    past = (timezone.now() - timedelta(days=1)).date().isoformat()
    for data in ({"kind": "pause", "reason": "travel", "pause_until": past, "token": token},
                 {"kind": "cancel", "reason": "bored", "token": token},
                 {"kind": "pause", "reason": "travel", "token": token}):
        response = client.post(reverse("portal:me:request"), data)
        assert response.status_code == 400
    assert not MemberRequest.objects.exists()


def test_self_serve_pauses_at_once_within_the_practice_limit(client, ana):
    member, membership = ana
    practice = member.practice
    practice.member_requests_self_serve, practice.member_pause_max_days = True, 60
    practice.automation_stage = "tier_sync"          # the ledger changes the subscription itself
    practice.save(update_fields=["member_requests_self_serve", "member_pause_max_days", "automation_stage"])
    sign_in(client, member)
    until = (timezone.now() + timedelta(days=30)).date()
    client.post(reverse("portal:me:request"), {"kind": "pause", "reason": "travel", "pause_until": until.isoformat(),
                                               "token": _token(_page(client))})
    membership.refresh_from_db()
    assert membership.status == MembershipStatus.PAUSED and membership.paused_until == until
    assert MemberRequest.objects.get().status == "applied"
    assert AuditLog.objects.filter(member=member, action="pause", detail__actor=f"member {member.pk}").exists()


def test_self_serve_sends_a_longer_pause_to_the_queue(client, ana):
    member, membership = ana
    practice = member.practice
    practice.member_requests_self_serve, practice.member_pause_max_days = True, 60
    practice.automation_stage = "tier_sync"          # the ledger changes the subscription itself
    practice.save(update_fields=["member_requests_self_serve", "member_pause_max_days", "automation_stage"])
    sign_in(client, member)
    until = (timezone.now() + timedelta(days=90)).date()
    client.post(reverse("portal:me:request"), {"kind": "pause", "reason": "travel", "pause_until": until.isoformat(),
                                               "token": _token(_page(client))})
    assert Membership.objects.get(pk=membership.pk).status == MembershipStatus.ACTIVE
    assert MemberRequest.objects.get().status == "pending"


def test_self_serve_cancels_at_the_end_of_the_paid_period(client, ana):
    member, membership = ana
    member.practice.member_requests_self_serve, member.practice.automation_stage = True, "tier_sync"
    member.practice.save(update_fields=["member_requests_self_serve", "automation_stage"])
    sign_in(client, member)
    client.post(reverse("portal:me:request"), {"kind": "cancel", "reason": "moving", "token": _token(_page(client))})
    membership.refresh_from_db()
    assert membership.status == MembershipStatus.CANCELLED
    assert membership.paid_through == membership.current_period_end


def test_update_card_goes_to_the_processors_hosted_page(client, ana, monkeypatch):
    member, _ = ana
    member.processor_customer_id = "cus_ana"
    member.save(update_fields=["processor_customer_id"])
    seen = {}

    class Processor:
        def card_update_url(self, *, customer_id, return_url):
            seen.update(customer_id=customer_id, return_url=return_url)
            return "https://billing.example/session/abc"

    monkeypatch.setattr("integrations.processors.member_card.get_dunning_processor", lambda: Processor())
    sign_in(client, member)
    response = client.post(reverse("portal:me:card"))
    assert response["Location"] == "https://billing.example/session/abc"
    assert seen["customer_id"] == "cus_ana" and seen["return_url"].endswith("/me/?card=done")
    assert AuditLog.objects.filter(member=member, action="member_card_update").exists()


def test_no_card_on_file_gets_a_plain_page(client, ana):
    member, _ = ana
    sign_in(client, member)
    assert client.post(reverse("portal:me:card")).status_code == 409
