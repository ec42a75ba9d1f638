"""The demo's group (`seed_demo`): "Glow Group" owns the demo practice (its clinic in Pasadena) and a
second practice with one clinic, Glow Aesthetics Santa Monica — its own tiers, about 30 members with
a few months of renewals and redemptions, two renewals failed this month — plus a front desk there and
the group's owner (a group manager, signing in with a code like the demo manager). A few Pasadena
members were seen in Santa Monica and redeemed there (the entries say so), so the group dashboard,
the group-wide search and redeeming at a sibling clinic all have something to show."""

from __future__ import annotations

import random
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.db import transaction
from django.utils import timezone

from billing import services as billing
from billing.facts import ChargeFailed, ChargeSucceeded
from memberships import services
from memberships.errors import LedgerError
from memberships.models import (
    AutomationStage, Location, Member, Membership, MembershipStatus, Organization, Practice, RolloverRule, Service,
    ServiceKind, StaffProfile, Tier, TierBenefit,
)
from memberships.roles import FRONT_DESK, GROUP_MANAGER
from memberships.two_factor import authenticator_secret, ensure_authenticator

GROUP_SLUG = "glow-group"
SECOND_SLUG = "glow-santa-monica"
OWNER = ("owner", "demo-owner-2026")
SECOND_DESK = ("frontdesk-sm", "demo-frontdesk-sm-2026")
# The owner's authenticator key (public, like the demo passwords): printed with the logins.
DEMO_OWNER_TOTP_KEY = b"glow-owner-totp-2026".hex()
FIRST = ["Iris", "Vera", "Lena", "Rosa", "Dana", "Tess", "Kai", "Ines", "Lucia", "Mara", "Omar", "Theo"]
LAST = ["Reyes", "Park", "Shah", "Ito", "Novak", "Silva", "Costa", "Berg", "Haddad", "Quinn"]


def _catalogue(practice: Practice) -> tuple[list[Tier], dict[str, Service]]:
    def service(name, code, kind=ServiceKind.TREATMENT, value=0):
        return Service.objects.create(practice=practice, name=name, code=code, kind=kind, unit_value_cents=value)

    kinds = {"hydrafacial": service("HydraFacial", "hydrafacial", value=25000),
             "dermaplane": service("Dermaplaning facial", "dermaplane", value=12000),
             "credit": service("Product credit", "product-credit", ServiceKind.CREDIT, value=1)}
    essentials = Tier.objects.create(practice=practice, code="essentials", name="Essentials", rank=1,
                                     processor_name="Membership — Tier A", price_cents=9900)
    TierBenefit.objects.create(tier=essentials, service=kinds["dermaplane"], quantity_per_cycle=1)
    TierBenefit.objects.create(tier=essentials, service=kinds["credit"], quantity_per_cycle=2500)
    glow = Tier.objects.create(practice=practice, code="glow", name="Glow", rank=2,
                               processor_name="Membership — Tier B", price_cents=19900)
    TierBenefit.objects.create(tier=glow, service=kinds["hydrafacial"], quantity_per_cycle=1,
                               rollover=RolloverRule.CARRY_OVER, rollover_cap=2)
    TierBenefit.objects.create(tier=glow, service=kinds["credit"], quantity_per_cycle=5000)
    return [essentials, glow, glow], kinds


def _invoice(membership, ref, cycle, start):
    return dict(processor="stripe", invoice_ref=f"in_demo_sm_{ref}_{cycle}", subscription_ref=f"sub_demo_sm_{ref}",
                customer_ref=f"cus_demo_sm_{ref}", membership_ref=billing.membership_ref_for(membership),
                amount_cents=membership.tier.price_cents, currency=membership.tier.currency, attempt_count=1,
                period_start=start, period_end=start + timedelta(days=30), created=int(start.timestamp()),
                event_created=int(start.timestamp()),
                billing_reason="subscription_create" if cycle == 0 else "subscription_cycle")


def _staff(username, password, role, practice, location, *, organization=None):
    user = get_user_model().objects.create_user(username=username, password=password, email=f"{username}@glow.example",
                                                is_staff=role == GROUP_MANAGER)
    user.groups.add(Group.objects.get(name=role))
    StaffProfile.objects.create(user=user, practice=practice, location=location, organization=organization)
    return user


def _members(practice, clinic, tiers, desk, count, rng):
    tz = ZoneInfo(practice.timezone)
    today = timezone.now().astimezone(tz).date()
    at = lambda d, h=10: datetime.combine(d, time(h, rng.randint(0, 59)), tzinfo=tz)  # noqa: E731
    for n in range(1, count + 1):
        first, last = rng.choice(FIRST), rng.choice(LAST)
        member = Member.objects.create(
            practice=practice, home_location=clinic, member_number=f"SM{n:05d}", first_name=first, last_name=last,
            email=f"{first}.{last}.sm{n}@example.com".lower(), phone=f"+1310555{n:04d}", sms_consent=True)
        months = rng.randint(1, 4)
        start = today - timedelta(days=30 * months + rng.randint(0, 20))
        membership = services.enroll_member(member=member, tier=rng.choice(tiers), actor=desk,
                                            idempotency_key=f"seed:sm:enroll:{n}", now=at(start))
        for cycle in range(months + 1):
            day = start + timedelta(days=30 * cycle)
            if day > today:
                break
            invoice = _invoice(membership, n, cycle, at(day, 0))
            if cycle == months and n % 12 == 0:          # this month's renewal failed: a dunning case is open
                billing.record_charge_failed(charge=ChargeFailed(**invoice, failure_code="card_declined",
                                                                 decline_code="insufficient_funds"), now=at(day, 6))
                break
            billing.record_charge_succeeded(
                charge=ChargeSucceeded(**invoice, amount_paid_cents=membership.tier.price_cents, paid_at=at(day, 6)),
                now=at(day, 6))
            membership.refresh_from_db()
            _redeem(membership, desk, f"sm:{n}:{cycle}", at(min(day + timedelta(days=rng.randint(1, 20)),
                                                                       today), 14), rng)


def _redeem(membership, actor, key, when, rng):
    for balance in membership.balances.select_related("service"):
        if balance.balance <= 0 or rng.random() < 0.4:
            continue
        quantity = 1 if balance.service.kind == ServiceKind.TREATMENT else min(balance.balance, 2500)
        try:
            services.redeem_entitlement(membership=membership, service=balance.service, quantity=quantity,
                                        actor=actor, idempotency_key=f"seed:redeem:{key}:{balance.service_id}",
                                        now=when)
        except LedgerError:
            pass  # held for a booking, or refused here: nothing spent that day


def _seen_at_the_sibling(practice, desk, rng):
    """A few Pasadena members came to Santa Monica and redeemed there (the group's tiers allow it)."""
    now = timezone.now()
    active = Membership.objects.filter(member__practice=practice, status=MembershipStatus.ACTIVE).order_by("id")[:40]
    for membership in rng.sample(list(active), min(5, len(active))):
        _redeem(membership, desk, f"sibling:{membership.pk}", now - timedelta(days=rng.randint(1, 20)), rng)


def group_exists() -> bool:
    return Organization.objects.filter(slug=GROUP_SLUG).exists()


@transaction.atomic
def seed_group(*, practice: Practice, count: int = 30) -> None:
    """The group around the demo practice (whose clinic is its first Location)."""
    rng = random.Random(20261206)
    organization = Organization.objects.create(name="Glow Group", slug=GROUP_SLUG)
    practice.organization = organization
    practice.save(update_fields=["organization"])
    second = Practice.objects.create(name="Glow Aesthetics Santa Monica", slug=SECOND_SLUG, organization=organization,
                                     timezone=practice.timezone, automation_stage=AutomationStage.OBSERVE)
    clinic = Location.objects.create(practice=second, name="Glow Aesthetics — Santa Monica")
    home = Location.objects.filter(practice=practice).order_by("id").first()
    desk = services.Actor.staff(_staff(*SECOND_DESK, FRONT_DESK, second, clinic))
    _staff(*OWNER, GROUP_MANAGER, practice, home, organization=organization)
    tiers, _ = _catalogue(second)
    _members(second, clinic, tiers, desk, count, rng)
    _seen_at_the_sibling(practice, desk, rng)


def group_logins(stdout) -> None:
    """The group's logins, printed after the demo practice's."""
    owner = get_user_model().objects.filter(username=OWNER[0]).first()
    if owner is None:
        return
    stdout.write(f"  {'Front desk':<11} {SECOND_DESK[0]} / {SECOND_DESK[1]}  (at Glow Aesthetics Santa Monica)")
    stdout.write(f"  {'Group':<11} {OWNER[0]} / {OWNER[1]}  (group manager of Glow Group: every practice, "
                 "the group dashboard at /group/), then a code:")
    secret = authenticator_secret(ensure_authenticator(user=owner, key_hex=DEMO_OWNER_TOTP_KEY))
    stdout.write(f"  the owner's two-factor key: {secret} (oathtool --totp -b {secret})")
