"""The member's page as a member reads it beside what she is charged and told: the price she pays
(her clinic's own, where it has one), the dates in her own clinic's zone (the notices' dates)."""

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone
from django.utils.html import strip_tags

from memberships import services
from memberships.models import Location, Member, Membership, TierLocationPrice
from tests.factories import TierFactory, ana_garcia
from tests.portal.me_support import sign_in

pytestmark = pytest.mark.django_db


def _text(client) -> str:
    response = client.get(reverse("portal:me:page"))
    assert response.status_code == 200
    return " ".join(strip_tags(response.content.decode()).split())


def test_a_member_priced_at_her_clinic_sees_the_price_she_pays_not_the_list_price(client, glow):
    tier = glow[0]
    practice = tier.practice
    south = Location.objects.create(practice=practice, name="South")
    luxe = TierFactory(practice=practice, code="luxe", name="Luxe", price_cents=34900)
    TierLocationPrice.objects.create(tier=tier, location=south, price_cents=17900)
    TierLocationPrice.objects.create(tier=luxe, location=south, price_cents=32900)
    member, membership = ana_garcia(tier)
    Member.objects.filter(pk=member.pk).update(home_location=south)
    Membership.objects.filter(pk=membership.pk).update(price_location=south,
                                                       current_period_end=timezone.now() + timedelta(days=20))
    sign_in(client, member)
    text = _text(client)
    assert "Glow · $179.00/month" in text and "Next charge: $179.00" in text
    assert "$199.00" not in text                                  # the list price she does not pay

    membership.refresh_from_db()
    services.change_tier(membership=membership, new_tier=luxe, effective="next_cycle", actor=services.Actor.system(),
                         idempotency_key="to-luxe", now=timezone.now())
    text = _text(client)
    assert "From the next renewal: Luxe ($329.00/month)" in text and "Next charge: $329.00" in text
    assert "$349.00" not in text


def test_dates_on_the_page_are_the_members_own_clinics_dates_as_in_her_notices(client, glow):
    """Her clinic is in New York, the practice in Los Angeles: a renewal at 02:30 in New York is the
    day her notices name, not the evening before; a hold booked at 20:00 in her zone is that day's."""
    from zoneinfo import ZoneInfo

    from billing.notices.wording import day

    tier, facial, _ = glow
    east = Location.objects.create(practice=tier.practice, name="East", timezone="America/New_York")
    member, membership = ana_garcia(tier)
    Member.objects.filter(pk=member.pk).update(home_location=east)
    zone = ZoneInfo("America/New_York")
    renewal_day = (timezone.now() + timedelta(days=20)).astimezone(zone).date()
    renewal = timezone.datetime(renewal_day.year, renewal_day.month, renewal_day.day, 2, 30, tzinfo=zone)
    Membership.objects.filter(pk=membership.pk).update(current_period_end=renewal)
    booked_day = (timezone.now() - timedelta(days=2)).astimezone(zone).date()
    booked = timezone.datetime(booked_day.year, booked_day.month, booked_day.day, 20, 0, tzinfo=zone)
    membership.refresh_from_db()
    services.reserve_entitlement(membership=membership, service=facial, actor=services.Actor.system(),
                                 idempotency_key="booked", now=booked)
    sign_in(client, member)
    text = _text(client)
    on = f"{day(renewal_day)}, {renewal_day.year}"
    assert f"Next charge: $199.00 on {on}" in text
    assert f"At the next renewal on {on}" in text or f"at the next renewal on {on}" in text
    assert f"held for a booked appointment (since {booked_day:%b %d})" in text


@pytest.mark.parametrize("usable", [True, False])
def test_the_cancel_form_says_what_happens_to_her_balance_as_the_practice_rules_it(client, glow, usable):
    """A practice whose frozen credit is not usable after a cancellation: the member is not told she
    keeps it until the end of the paid period (she would lose it the moment she cancels)."""
    from memberships.errors import MembershipNotRedeemable
    from memberships.models import MembershipStatus

    member, membership = ana_garcia(glow[0])
    end = timezone.now() + timedelta(days=20)
    Membership.objects.filter(pk=membership.pk).update(current_period_end=end)
    practice = member.practice
    practice.frozen_credit_usable_until_period_end, practice.member_requests_self_serve = usable, True
    practice.automation_stage = "tier_sync"
    practice.save(update_fields=["frozen_credit_usable_until_period_end", "member_requests_self_serve",
                                 "automation_stage"])
    sign_in(client, member)
    text = _text(client)
    promise = "stays usable until the end of the period you have paid for"
    assert (promise in text) == usable
    assert ("can no longer be used once the membership is cancelled" in text) == (not usable)

    html = client.get(reverse("portal:me:page")).content.decode()
    import re

    token = re.search(r'name="token" value="([0-9a-f]{32})"', html).group(1)
    client.post(reverse("portal:me:request"), {"kind": "cancel", "reason": "moving", "token": token})
    membership.refresh_from_db()
    assert membership.status == MembershipStatus.CANCELLED
    try:
        services.redeem_entitlement(membership=membership, service=glow[2], quantity=100,
                                    actor=services.Actor.system(), idempotency_key="after", now=timezone.now())
        spent = True
    except MembershipNotRedeemable:
        spent = False
    assert spent == usable                                      # what the form said is what happens


@pytest.mark.parametrize("status", ["past_due", "paused"])
def test_a_renewal_that_did_not_happen_is_not_shown_as_a_date_to_come(client, glow, status):
    """Her renewal was due three days ago and the card was declined (past due), or she is paused: the
    page does not announce a 'next charge' or 'next renewal' on a day that has passed; past due, it
    says the payment did not go through and points to the card."""
    from billing.notices.wording import day

    member, membership = ana_garcia(glow[0])
    due = timezone.now() - timedelta(days=3)
    Membership.objects.filter(pk=membership.pk).update(
        status=status, current_period_end=due,
        paused_until=(timezone.now() + timedelta(days=20)).date() if status == "paused" else None)
    sign_in(client, member)
    text = _text(client)
    local = due.astimezone(member.practice.zone).date()
    on = f"{day(local)}, {local.year}"
    assert f"Next charge: $199.00 on {on}" not in text
    assert f"next renewal on {on}".lower() not in text.lower()
    assert "Product credit: $50.00" in text                        # what expires at the next renewal, still listed
    if status == "past_due":
        assert f"Your payment due on {on} did not go through" in text and "Update my card" in text


def test_a_treatment_the_clinic_reversed_shows_as_given_back_in_her_history(client, glow):
    """A redemption the desk recorded by mistake and reversed: her history does not show a
    treatment used while her balance shows it still there."""
    tier, facial, _ = glow
    member, membership = ana_garcia(tier)
    used = services.redeem_entitlement(membership=membership, service=facial, actor=services.Actor.system(),
                                       idempotency_key="by-mistake", now=timezone.now() - timedelta(hours=2))
    services.reverse_entry(entry=used, actor=services.Actor.system(), reason="wrong member",
                           idempotency_key="undo", now=timezone.now() - timedelta(hours=1))
    sign_in(client, member)
    text = _text(client)
    assert "Used: HydraFacial" in text and "Given back: HydraFacial" in text
    assert "HydraFacial: 1 available" in text or "HydraFacial: 1" in text


@pytest.mark.parametrize("kind", ["cancel", "pause"])
def test_self_serve_waits_for_staff_where_the_processor_is_not_told_yet(client, glow, kind):
    """Below `tier_sync` the ledger does not change the subscription at the processor: a member's
    self-served cancellation or pause would read 'Done' while her card kept being charged. It waits in
    the staff queue instead, where the desk stops the billing by hand; from `tier_sync` on it is done
    at once."""
    from memberships.models import MemberRequest, MembershipStatus

    member, membership = ana_garcia(glow[0])
    practice = member.practice
    practice.member_requests_self_serve, practice.automation_stage = True, "redemptions"
    practice.save(update_fields=["member_requests_self_serve", "automation_stage"])
    sign_in(client, member)
    until = (timezone.now() + timedelta(days=20)).date().isoformat()

    def ask():
        import re

        html = client.get(reverse("portal:me:page")).content.decode()
        token = re.search(r'name="token" value="([0-9a-f]{32})"', html).group(1)
        return client.post(reverse("portal:me:request"), {"kind": kind, "reason": "moving", "pause_until": until,
                                                          "token": token}, follow=True).content.decode()

    assert "the clinic will look at your request" in ask()
    assert Membership.objects.get(pk=membership.pk).status == MembershipStatus.ACTIVE
    assert MemberRequest.objects.get().status == "pending"

    MemberRequest.objects.all().delete()
    practice.automation_stage = "tier_sync"
    practice.save(update_fields=["automation_stage"])
    assert "Done: your membership is updated" in ask()
    assert Membership.objects.get(pk=membership.pk).status == (
        MembershipStatus.CANCELLED if kind == "cancel" else MembershipStatus.PAUSED)
