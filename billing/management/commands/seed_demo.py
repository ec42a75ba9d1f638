"""A believable demo practice: three tiers, ~150 members with a few months of history — monthly
charges (mirrored invoices that refill the balance), redemptions, rollovers — some paused, some
cancelled, and some past due with their dunning case open, and three staff logins.

Everything goes through the same services the processor webhooks and the staff pages use, with
deterministic keys; a second run finds the practice and changes nothing. The practice starts in the
`observe` stage, so nothing leaves for a processor or a record: the outbox shows what each effect
would have been."""

from __future__ import annotations

import random
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management.base import BaseCommand
from django.db import transaction
from django.utils import timezone

from billing import services as billing
from billing.facts import ChargeFailed, ChargeSucceeded
from memberships import services
from memberships.errors import LedgerError
from memberships.models import (
    AutomationStage,
    Location,
    Member,
    Practice,
    RolloverRule,
    Service,
    ServiceKind,
    StaffProfile,
    Tier,
    TierBenefit,
)
from memberships.roles import CLINICIAN, FRONT_DESK, MANAGER, ensure_roles

SLUG = "glow-aesthetics"
LOGINS = [
    ("frontdesk", "demo-frontdesk-2026", FRONT_DESK),
    ("clinician", "demo-clinician-2026", CLINICIAN),
    ("manager", "demo-manager-2026", MANAGER),
]
FIRST = ["Ava", "Mia", "Sofia", "Isabella", "Emma", "Olivia", "Harper", "Camila", "Luna", "Chloe", "Zoe", "Nora",
         "Layla", "Ella", "Grace", "Aria", "Riley", "Hannah", "Leah", "Maya", "Priya", "Naomi", "Jade", "Elena",
         "Noah", "Liam", "Mateo", "Ethan", "Daniel", "Julian"]
LAST = ["Nguyen", "Garcia", "Patel", "Kim", "Johnson", "Martinez", "Lee", "Brown", "Lopez", "Chen", "Davis",
        "Rodriguez", "Wilson", "Anderson", "Thomas", "Moore", "Clark", "Lewis", "Walker", "Hall", "Young", "Allen",
        "Wright", "Scott", "Torres", "Flores", "Rivera", "Rossi", "Cohen", "Okafor"]


class Command(BaseCommand):
    help = "Create the demo practice (idempotent) and print the staff logins."

    def add_arguments(self, parser):
        parser.add_argument("--members", type=int, default=150)

    def handle(self, *args, **options):
        ensure_roles()
        if Practice.objects.filter(slug=SLUG).exists():
            self.stdout.write("The demo practice already exists; nothing changed.")
        else:
            self._seed(options["members"])
            self.stdout.write(self.style.SUCCESS("Demo practice created."))
        self._logins()

    def _logins(self):
        self.stdout.write("Staff logins (http://127.0.0.1:8000/):")
        for username, password, role in LOGINS:
            self.stdout.write(f"  {role:<11} {username} / {password}")
        self.stdout.write("  The manager also reaches the admin at /admin/.")

    @transaction.atomic
    def _seed(self, count: int):
        rng = random.Random(20261125)
        tz = ZoneInfo("America/Los_Angeles")
        practice = Practice.objects.create(name="Glow Aesthetics", slug=SLUG, timezone="America/Los_Angeles",
                                           automation_stage=AutomationStage.OBSERVE)
        location = Location.objects.create(practice=practice, name="Glow Aesthetics — Pasadena")
        users = {}
        for username, password, role in LOGINS:
            user = get_user_model().objects.create_user(username=username, password=password,
                                                        is_staff=(role == MANAGER),
                                                        email=f"{username}@glow.example")
            user.groups.add(Group.objects.get(name=role))
            StaffProfile.objects.create(user=user, practice=practice)
            users[role] = user

        def service(name, code, kind=ServiceKind.TREATMENT, value=0):
            return Service.objects.create(practice=practice, name=name, code=code, kind=kind, unit_value_cents=value)

        hydrafacial = service("HydraFacial", "hydrafacial", value=25000)
        dermaplane = service("Dermaplaning facial", "dermaplane", value=12000)
        botox = service("Neurotoxin (units)", "neurotoxin-units", value=1400)
        credit = service("Product credit", "product-credit", ServiceKind.CREDIT, value=1)

        def tier(code, name, neutral, price, rank, benefits):
            t = Tier.objects.create(practice=practice, code=code, name=name, processor_name=neutral,
                                    price_cents=price, rank=rank)
            for svc, qty, rule, extra in benefits:
                TierBenefit.objects.create(tier=t, service=svc, quantity_per_cycle=qty, rollover=rule, **extra)
            return t

        essentials = tier("essentials", "Essentials", "Membership — Tier A", 9900, 1, [
            (dermaplane, 1, RolloverRule.NONE, {}),
            (credit, 2500, RolloverRule.NONE, {}),
        ])
        glow = tier("glow", "Glow", "Membership — Tier B", 19900, 2, [
            (hydrafacial, 1, RolloverRule.CARRY_OVER, {"rollover_cap": 2}),
            (credit, 5000, RolloverRule.NONE, {}),
        ])
        luxe = tier("luxe", "Luxe", "Membership — Tier C", 34900, 3, [
            (hydrafacial, 2, RolloverRule.CARRY_OVER, {"rollover_cap": 4}),
            (botox, 20, RolloverRule.EXPIRE_AFTER, {"expire_after_cycles": 3}),
            (credit, 10000, RolloverRule.NONE, {}),
        ])
        tiers = [essentials] * 3 + [glow] * 5 + [luxe] * 2

        today = timezone.now().astimezone(tz).date()
        system, processor = services.Actor.system("seed"), services.Actor.processor("seed")
        front_desk = services.Actor.staff(users[FRONT_DESK])
        for n in range(1, count + 1):
            first, last = rng.choice(FIRST), rng.choice(LAST)
            member = Member.objects.create(
                practice=practice, home_location=location, member_number=f"GA{n:05d}", first_name=first,
                last_name=last, email=f"{first}.{last}{n}@example.com".lower(), phone=f"+1626555{n:04d}",
                sms_consent=rng.random() < 0.8,
            )
            months = rng.randint(1, 6)
            start_day = today - timedelta(days=30 * months + rng.randint(0, 20))
            at = lambda d, h=10: datetime.combine(d, time(h, rng.randint(0, 59)), tzinfo=tz)  # noqa: E731
            membership = services.enroll_member(member=member, tier=rng.choice(tiers), actor=front_desk,
                                                idempotency_key=f"seed:enroll:{n}", now=at(start_day))
            for cycle in range(months + 1):
                cycle_day = start_day + timedelta(days=30 * cycle)
                if cycle_day > today:
                    break
                billing.record_charge_succeeded(
                    charge=ChargeSucceeded(**self._invoice(membership, n, cycle, at(cycle_day, 0),
                                                           at(cycle_day + timedelta(days=30), 0)),
                                           amount_paid_cents=membership.tier.price_cents, paid_at=at(cycle_day, 6)),
                    now=at(cycle_day, 6))
                membership.refresh_from_db()
                self._redeem_some(rng, membership, cycle_day, today, n, cycle, at, front_desk)
            self._final_state(rng, membership, today, n, at, system, processor, front_desk, months, start_day)

    def _redeem_some(self, rng, membership, cycle_day, today, n, cycle, at, actor):
        for balance in membership.balances.select_related("service"):
            if balance.balance <= 0 or rng.random() < 0.35:
                continue
            day = min(cycle_day + timedelta(days=rng.randint(1, 25)), today)
            quantity = 1 if balance.service.kind == ServiceKind.TREATMENT else min(balance.balance, rng.choice([1500, 2500, 4000]))
            if balance.service.code == "neurotoxin-units":
                quantity = min(balance.balance, rng.choice([10, 20]))
            try:
                services.redeem_entitlement(membership=membership, service=balance.service, quantity=quantity,
                                            actor=actor, idempotency_key=f"seed:redeem:{n}:{cycle}:{balance.service_id}",
                                            now=at(day, 14))
            except LedgerError:
                pass  # an unlucky draw (balance held elsewhere): no redemption that day

    @staticmethod
    def _invoice(membership, n, cycle, period_start, period_end):
        return dict(processor="stripe", invoice_ref=f"in_demo_{n}_{cycle}", subscription_ref=f"sub_demo_{n}",
                    customer_ref=f"cus_demo_{n}", membership_ref=billing.membership_ref_for(membership),
                    amount_cents=membership.tier.price_cents, currency=membership.tier.currency, attempt_count=1,
                    period_start=period_start, period_end=period_end, created=int(period_start.timestamp()),
                    event_created=int(period_start.timestamp()))

    def _final_state(self, rng, membership, today, n, at, system, processor, staff, months, start_day):
        roll = rng.random()
        key = f"seed:state:{n}"
        if roll < 0.07:
            # This month's renewal failed: the invoice is mirrored, the membership past due, the
            # dunning case open (mostly soft declines; now and then a lost card).
            failed_day = today - timedelta(days=rng.randint(0, 6))
            decline = "lost_card" if rng.random() < 0.25 else "insufficient_funds"
            billing.record_charge_failed(
                charge=ChargeFailed(**self._invoice(membership, n, "late", at(failed_day, 0),
                                                    at(failed_day + timedelta(days=30), 0)),
                                    hard=decline == "lost_card", failure_code="card_declined", decline_code=decline),
                now=at(failed_day, 6))
        elif roll < 0.12:
            services.pause_membership(membership=membership, until=today + timedelta(days=rng.randint(10, 60)),
                                      actor=staff, idempotency_key=key, now=at(today - timedelta(days=3)),
                                      reason="Travelling")
        elif roll < 0.18:
            services.cancel_membership(membership=membership, actor=staff, idempotency_key=key,
                                       now=at(today - timedelta(days=rng.randint(1, 20))), reason="Moving away")
