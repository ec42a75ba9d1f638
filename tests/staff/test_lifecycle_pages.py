"""Enroll, change tier, pause, resume, cancel: form, confirmation stating the consequences, service."""

import datetime

import pytest
from django.urls import reverse
from django.utils import timezone

from memberships.models import AuditLog, Member, Membership, MembershipStatus, RolloverRule
from tests.factories import MemberFactory, ServiceFactory, TierBenefitFactory, TierFactory

from .conftest import form_value


@pytest.fixture
def desk(client, front_desk):
    client.force_login(front_desk)
    return client


@pytest.fixture
def radiance(glow):
    """A richer tier without product credit: 2 HydraFacials that expire after 2 cycles, and a peel."""
    tier, facial, _ = glow
    peel = ServiceFactory(practice=tier.practice, name="Chemical peel", code="peel")
    rich = TierFactory(practice=tier.practice, code="radiance", name="Radiance", price_cents=29900, rank=2)
    TierBenefitFactory(tier=rich, service=facial, quantity_per_cycle=2, rollover=RolloverRule.EXPIRE_AFTER,
                       expire_after_cycles=2)
    TierBenefitFactory(tier=rich, service=peel, quantity_per_cycle=1)
    return rich


def flow(client, url, data):
    """Fill the form, read the confirmation page, confirm. Returns (confirmation html, final response)."""
    page = client.get(url).content.decode()
    data = {"token": form_value(page, "token"), **data}
    confirm = client.post(url, data)
    assert confirm.status_code == 200, confirm.content.decode()[:2000]
    html = confirm.content.decode()
    assert "What will happen" in html
    done = client.post(url, {**data, "confirm": "1"})
    return html, done, data


def test_new_member_enrollment(desk, glow, front_desk):
    tier, *_ = glow
    html, done, data = flow(desk, reverse("memberships:enroll_new"), {
        "first_name": "Maya", "last_name": "Lopez", "email": "Maya@Example.com", "phone": "(415) 555-0188",
        "sms_consent": "on", "tier": tier.pk})
    assert "Maya Lopez joins Glow at $199.00/month" in html
    assert "1 HydraFacial per month (carries over, up to 2)" in html
    assert "take the card and start the subscription" in html  # observe stage: the ledger starts none
    assert done.status_code == 302
    member = Member.objects.get(last_name="Lopez")
    assert (member.email, member.phone, member.sms_consent) == ("maya@example.com", "+14155550188", True)
    assert Membership.objects.get(member=member).status == MembershipStatus.PENDING
    # The confirmation resubmitted (back button, double click) creates nothing more.
    desk.post(reverse("memberships:enroll_new"), {**data, "confirm": "1"})
    assert Member.objects.filter(last_name="Lopez").count() == 1
    assert Membership.objects.filter(member=member).count() == 1
    assert AuditLog.objects.filter(action="enroll", user=front_desk).count() == 1


@pytest.mark.parametrize("fields,error", [
    ({"first_name": "", "last_name": "X", "email": "x@example.com"}, "This field is required."),
    ({"first_name": "A", "last_name": "B", "email": "", "phone": ""}, "Give an email or a phone number"),
    ({"first_name": "A", "last_name": "B", "phone": "12"}, "Enter a valid phone number."),
    ({"first_name": "A", "last_name": "B", "email": "ana.garcia@example.com"}, "already exists"),
])
def test_new_member_form_errors(desk, glow, member_with_glow, fields, error):
    tier, *_ = glow
    url = reverse("memberships:enroll_new")
    page = desk.get(url).content.decode()
    data = {"token": form_value(page, "token"), "tier": tier.pk, "email": "", "phone": "", **fields}
    response = desk.post(url, data)
    if response.status_code == 200:  # valid form: the duplicate shows up when confirming
        response = desk.post(url, {**data, "confirm": "1"})
    assert response.status_code == 400
    assert error in response.content.decode()
    assert Member.objects.count() == 1


def test_enroll_existing_member_without_membership(desk, glow):
    tier, *_ = glow
    member = MemberFactory(practice=tier.practice)
    _, done, _ = flow(desk, reverse("memberships:enroll", args=[member.pk]), {"tier": tier.pk})
    assert done.status_code == 302
    assert Membership.objects.get(member=member).tier == tier


def test_enroll_member_who_already_has_one_is_refused(desk, member_with_glow, glow):
    member, *_ = member_with_glow
    url = reverse("memberships:enroll", args=[member.pk])
    page = desk.get(url).content.decode()
    response = desk.post(url, {"token": form_value(page, "token"), "tier": glow[0].pk})
    assert response.status_code == 400
    assert b"already has an open membership" in response.content


def test_change_tier_now_states_price_and_expiring_credit(desk, member_with_glow, radiance):
    member, membership, *_ = member_with_glow
    html, done, _ = flow(desk, reverse("memberships:change_tier", args=[member.pk]),
                         {"tier": radiance.pk, "effective": "now"})
    assert "price goes from $199.00/month to $299.00/month" in html
    assert "2 HydraFacial per month (expires after 2 cycles)" in html
    # At the renewal, Radiance's rules: its facials do not carry over and it has no product credit.
    assert "these expire if still unused" in html
    assert "<li>HydraFacial: 1</li>" in html and "<li>Product credit: $50.00</li>" in html
    assert done.status_code == 302
    membership.refresh_from_db()
    assert membership.tier == radiance


def test_change_tier_next_cycle(desk, member_with_glow, radiance):
    member, membership, *_ = member_with_glow
    html, done, _ = flow(desk, reverse("memberships:change_tier", args=[member.pk]),
                         {"tier": radiance.pk, "effective": "next_cycle"})
    assert "stays $199.00/month until the renewal" in html
    membership.refresh_from_db()
    assert membership.pending_tier == radiance and membership.tier != radiance
    assert b"Moves to Radiance at the next cycle" in desk.get(done["Location"]).content


def test_pause_then_resume(desk, member_with_glow):
    member, membership, *_ = member_with_glow
    until = timezone.localdate() + datetime.timedelta(days=30)
    html, done, _ = flow(desk, reverse("memberships:pause", args=[member.pk]),
                         {"until": until.isoformat(), "reason": "travel"})
    assert "no refills and no redemptions while paused; it resumes by itself" in html
    # The practice is not at the tier-sync stage: the page says the processor is changed by hand.
    assert "pause collection until" in html and "in the processor&#x27;s dashboard" in html
    membership.refresh_from_db()
    assert membership.status == MembershipStatus.PAUSED and membership.paused_until == until
    html, done, _ = flow(desk, reverse("memberships:resume", args=[member.pk]), {})
    assert "active again at $199.00/month" in html
    membership.refresh_from_db()
    assert membership.status == MembershipStatus.ACTIVE


def test_pause_in_the_past_is_a_form_error(desk, member_with_glow):
    member, membership, *_ = member_with_glow
    url = reverse("memberships:pause", args=[member.pk])
    page = desk.get(url).content.decode()
    response = desk.post(url, {"token": form_value(page, "token"), "until": "2020-01-01"})
    assert response.status_code == 400
    assert b"Choose a date after today." in response.content


@pytest.mark.parametrize("zone, local", [
    ("America/Los_Angeles", datetime.datetime(2026, 3, 10, 23, 30)),   # UTC is already on the 11th
    ("America/New_York", datetime.datetime(2026, 3, 10, 23, 30)),      # so is UTC; the server's zone is not
    ("Asia/Tokyo", datetime.datetime(2026, 3, 11, 8, 0)),              # UTC and the server still on the 10th
])
def test_pause_checks_after_today_in_the_practice_time_zone(desk, member_with_glow, zone, local):
    """Late in the practice's evening, "tomorrow" is a valid pause end and "today" is not, for the form
    and for the service alike, whatever the server's or UTC's date."""
    from unittest import mock
    from zoneinfo import ZoneInfo

    member, membership, *_ = member_with_glow
    member.practice.timezone = zone
    member.practice.save(update_fields=["timezone"])
    now = local.replace(tzinfo=ZoneInfo(zone)).astimezone(datetime.timezone.utc)  # as timezone.now() gives it
    today = local.date()
    url = reverse("memberships:pause", args=[member.pk])
    with mock.patch("django.utils.timezone.now", return_value=now):
        page = desk.get(url).content.decode()
        refused = desk.post(url, {"token": form_value(page, "token"), "until": today.isoformat()})
        assert refused.status_code == 400 and b"Choose a date after today." in refused.content
        html, done, _ = flow(desk, url, {"until": (today + datetime.timedelta(days=1)).isoformat()})
    assert done.status_code == 302
    membership.refresh_from_db()
    assert membership.status == MembershipStatus.PAUSED
    assert membership.paused_until == today + datetime.timedelta(days=1)


def test_resume_an_active_membership_is_refused(desk, member_with_glow):
    member, *_ = member_with_glow
    url = reverse("memberships:resume", args=[member.pk])
    page = desk.get(url).content.decode()
    response = desk.post(url, {"token": form_value(page, "token")})
    assert response.status_code == 400
    assert b"Only a paused membership can be resumed." in response.content


def test_change_tier_lists_carry_over_above_the_new_cap_and_nothing_held(desk, member_with_glow, glow):
    """A member holding more carried-over facials than the new tier carries: the page says how many
    go at the renewal, counting only paid credit (not imported credit, not units on hold)."""
    from memberships import services
    from memberships.models import RolloverRule, TierBenefit
    from tests.factories import TierFactory

    member, membership, facial, _ = member_with_glow
    services.grant_opening_balance(membership=membership, service=facial, quantity=3, actor=services.Actor.system(),
                                   idempotency_key="imported", now=timezone.now())
    lite = TierFactory(practice=member.practice, code="lite", name="Lite", price_cents=9900)
    TierBenefit.objects.create(tier=lite, service=facial, quantity_per_cycle=1, rollover=RolloverRule.CARRY_OVER,
                               rollover_cap=0)
    html, _, _ = flow(desk, reverse("memberships:change_tier", args=[member.pk]),
                      {"tier": lite.pk, "effective": "next_cycle"})
    assert "<li>HydraFacial: 1</li>" in html          # the paid facial, not the 3 imported ones


@pytest.mark.parametrize("stage,says", [
    ("observe", "cancel the subscription in the processor&#x27;s dashboard. Until then the card keeps being charged"),
    ("tier_sync", "the subscription is cancelled: no further charges"),
])
def test_cancel_page_states_what_happens_at_the_processor_at_this_stage(desk, member_with_glow, stage, says):
    member, *_ = member_with_glow
    member.practice.automation_stage = stage
    member.practice.save(update_fields=["automation_stage"])
    page = desk.get(reverse("memberships:cancel", args=[member.pk])).content.decode()
    html = desk.post(reverse("memberships:cancel", args=[member.pk]),
                     {"token": form_value(page, "token"), "reason": "moving away"}).content.decode()
    assert says in html


def test_cancel_freezes_the_balance(desk, member_with_glow):
    member, membership, *_ = member_with_glow
    html, done, data = flow(desk, reverse("memberships:cancel", args=[member.pk]), {"reason": "moving away"})
    assert "These balances are frozen" in html and "HydraFacial: 1" in html
    assert done.status_code == 302
    membership.refresh_from_db()
    assert membership.status == MembershipStatus.CANCELLED
    chart = desk.get(done["Location"]).content.decode()
    assert 'data-flag="cancelled"' in chart
    # The confirmation posted again (Back, resubmit) changes nothing and says so.
    again = desk.post(reverse("memberships:cancel", args=[member.pk]), {**data, "confirm": "1"}, follow=True)
    assert b"already done" in again.content
    # A cancelled member's page offers a new enrollment; the cancel page itself is gone.
    assert desk.get(reverse("memberships:cancel", args=[member.pk])).status_code == 404
