"""A believable demo practice: three tiers, ~150 members with a few months of history — monthly
charges (mirrored invoices that refill the balance; now and then a renewal that failed first and was
recovered hours later), redemptions, rollovers, two disputed treatments reversed — some paused, some
cancelled, and some past due with their dunning case open; the practice's spreadsheet imported three
weeks ago with a few rows wrong, nightly reconciliation runs since and the manager resolving what they
found; notices (upcoming charge, expiring credit) sent to half the members before their last renewals;
and three staff logins.

Everything goes through the same services the processor webhooks and the staff pages use, with
deterministic keys; a second run finds the practice and changes nothing. The practice starts in the
`observe` stage, so nothing leaves for a processor or a record: the outbox shows what each effect
would have been."""

from __future__ import annotations

import csv
import io
import random
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from django.utils import timezone

from billing import services as billing
from billing.facts import ChargeFailed, ChargeSucceeded
from billing.models import Discrepancy, DiscrepancyKind, ImportStatus
from billing.notices.history import record_notice_history
from billing.reconciliation.runs import resolve_discrepancy, run_reconciliation
from billing.reconciliation.snapshots import SourceSkipped, ledger_rows, registered_sources
from billing.sheets.batches import create_import_batch, run_import_batch
from memberships import services
from memberships.errors import LedgerError
from memberships.models import (
    AutomationStage,
    EntryKind,
    LedgerEntry,
    Location,
    Member,
    Membership,
    MembershipAgreement,
    MembershipStatus,
    Practice,
    RolloverRule,
    Service,
    ServiceKind,
    StaffProfile,
    Tier,
    TierBenefit,
)
from memberships.roles import CLINICIAN, FRONT_DESK, MANAGER, ensure_roles
from memberships.two_factor import authenticator_secret, ensure_authenticator

from ._demo_group import group_exists, group_logins, seed_group

SLUG = "glow-aesthetics"
AGREEMENT = """Glow Aesthetics membership agreement

1. Your membership renews every month on the day you joined, at the price shown when you joined, charged to the card you give on our payment processor's page.
2. Each month's benefits are added when that month's payment succeeds. What is left at the end of a month carries over or expires as your tier says.
3. You may pause for up to three months a year, or cancel with effect from the end of the month you have paid for, by asking the front desk.
4. Benefits are for you alone and have no cash value."""
# The demo manager's authenticator key (public, like the demo passwords): printed with the logins.
DEMO_MANAGER_TOTP_KEY = b"glow-demo-totp-2026!".hex()
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
        demo = Practice.objects.filter(slug=SLUG).first()
        if demo is not None and not group_exists():
            seed_group(practice=demo)       # the group around it: a second practice, its clinic, the owner
            self.stdout.write(self.style.SUCCESS("Demo group created: Glow Group (Pasadena and Santa Monica)."))
        self._logins()

    def _logins(self):
        self.stdout.write("Staff logins (http://127.0.0.1:8000/):")
        for username, password, role in LOGINS:
            self.stdout.write(f"  {role:<11} {username} / {password}")
        self.stdout.write("  The manager also reaches the admin at /admin/.")
        manager = get_user_model().objects.filter(username="manager").first()
        if manager is not None:  # managers sign in with a code: the demo manager's authenticator key
            secret = authenticator_secret(ensure_authenticator(user=manager, key_hex=DEMO_MANAGER_TOTP_KEY))
            self.stdout.write(f"  The manager's two-factor key (add it to an authenticator app, time-based, 6 digits):"
                              f" {secret}")
            self.stdout.write(f"  or print the current code with: oathtool --totp -b {secret}")
        group_logins(self.stdout)
        self.stdout.write("A member's own page: http://127.0.0.1:8000/me/link/ (the email backend prints the link;"
                          " the staff queue of their requests is 'Member requests').")
        self.stdout.write(f"The public join page: http://127.0.0.1:8000/join/{SLUG}/ (its form from the Tier sync stage on).")

    @transaction.atomic
    def _seed(self, count: int):
        rng = random.Random(20261125)
        late = random.Random(20261126)     # renewals that failed first: apart, so the rest stays as it was
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
        # The join page (/join/glow-aesthetics/) offers Glow and Luxe under the agreement's first version.
        Tier.objects.filter(pk__in=[glow.pk, luxe.pk]).update(offered_online=True)
        MembershipAgreement.objects.create(practice=practice, version=1, published_at=timezone.now(), text=AGREEMENT)

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
                invoice = self._invoice(membership, n, cycle, at(cycle_day, 0), at(cycle_day + timedelta(days=30), 0))
                if cycle and n % 2 == 0 and timedelta(days=1) <= today - cycle_day <= timedelta(days=100) \
                        and membership.status == MembershipStatus.ACTIVE:
                    # Half the members were told 7 days before each of their last renewals (a notices pilot).
                    told = record_notice_history(membership=membership, boundary=membership.current_period_end)
                    if n % 4 == 0:
                        self._use_what_was_named(told, n, cycle, front_desk)
                paid_at, paid_now = at(cycle_day, 6), at(cycle_day, 6)
                if cycle and today - cycle_day >= timedelta(days=2) and today - cycle_day < timedelta(weeks=8) \
                        and late.random() < 0.1:
                    # The renewal failed first (dunning opens a case); the card went through hours later.
                    billing.record_charge_failed(
                        charge=ChargeFailed(**invoice, failure_code="card_declined", decline_code="insufficient_funds"),
                        now=paid_at)
                    paid_at = paid_now = paid_at + timedelta(hours=late.randint(3, 30))
                    invoice["event_created"] += 1
                billing.record_charge_succeeded(
                    charge=ChargeSucceeded(**invoice, amount_paid_cents=membership.tier.price_cents, paid_at=paid_at),
                    now=paid_now)
                membership.refresh_from_db()
                self._redeem_some(rng, membership, cycle_day, today, n, cycle, at, front_desk)
            self._final_state(rng, membership, today, n, at, system, processor, front_desk, months, start_day)
        now = timezone.now()
        self._disputes(practice, users[MANAGER], now)
        self._reconciliation_history(practice, users[MANAGER], today, tz, now)
        self._member_requests(practice, users[FRONT_DESK], now)
        self._member_page_visits(practice, now)

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
    def _use_what_was_named(notices, n, cycle, actor):
        """Half the members told that benefits expire came in before the boundary and used them."""
        for notice in notices:
            for service_id, quantity in notice.nudged.items():
                service = Service.objects.get(pk=service_id)
                try:
                    services.redeem_entitlement(
                        membership=notice.membership, service=service,
                        quantity=quantity if service.kind == ServiceKind.CREDIT else 1, actor=actor,
                        idempotency_key=f"seed:nudged:{n}:{cycle}:{service_id}",
                        now=notice.boundary_at - timedelta(days=2, hours=-15))
                except LedgerError:
                    pass  # held for a booking, or already used: nothing more to spend

    @staticmethod
    def _invoice(membership, n, cycle, period_start, period_end):
        return dict(processor="stripe", invoice_ref=f"in_demo_{n}_{cycle}", subscription_ref=f"sub_demo_{n}",
                    customer_ref=f"cus_demo_{n}", membership_ref=billing.membership_ref_for(membership),
                    amount_cents=membership.tier.price_cents, currency=membership.tier.currency, attempt_count=1,
                    period_start=period_start, period_end=period_end, created=int(period_start.timestamp()),
                    event_created=int(period_start.timestamp()),
                    billing_reason="subscription_create" if cycle == 0 else "subscription_cycle")

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

    @staticmethod
    def _member_requests(practice, front_desk, now):
        """Members asked on their own page (/me/): two pauses and a cancellation wait in the staff
        queue; one pause was declined, one cancellation approved (the dashboard counts the reasons)."""
        from memberships.services.member_requests import (
            approve_member_request,
            decline_member_request,
            file_member_request,
        )

        active = list(Membership.objects.filter(member__practice=practice, status=MembershipStatus.ACTIVE)
                      .select_related("member__practice").order_by("id")[:5])
        asks = [("pause", "travel", "Away for the summer"), ("pause", "price", ""),
                ("cancel", "price", "Money is tight this year"), ("pause", "not_using", ""), ("cancel", "moving", "")]
        staff = services.Actor.staff(front_desk)
        for number, (membership, (kind, reason, note)) in enumerate(zip(active, asks)):
            at = now - timedelta(days=5 - number, hours=3)
            request = file_member_request(
                membership=membership, kind=kind, reason=reason, note=note,
                pause_until=(at + timedelta(days=45)).date() if kind == "pause" else None,
                actor=services.Actor.member(membership.member), idempotency_key=f"seed:member-request:{number}", now=at)
            if number == 3:
                decline_member_request(request_id=request.pk, practice_id=practice.pk, actor=staff, now=at,
                                       reason="Pauses need a month's notice; please call us.")
            elif number == 4:
                approve_member_request(request_id=request.pk, practice_id=practice.pk, actor=staff, now=at)

    @staticmethod
    def _member_page_visits(practice, now):
        """Members opened their own page (/me/) to see what is left, a few times each over the last
        three months: the audit rows the page writes (the dashboard's staff hours saved counts them)."""
        from memberships.services.common import write_view_audit

        rng = random.Random(20261127)
        members = list(Member.objects.filter(practice=practice, memberships__status=MembershipStatus.ACTIVE)
                       .order_by("id").distinct()[:60])
        for member in members:
            for days_ago in sorted(rng.sample(range(1, 90), rng.randint(1, 3)), reverse=True):
                write_view_audit(actor=services.Actor.member(member), action="member_page_view", members=[member],
                                 now=now - timedelta(days=days_ago, hours=rng.randint(0, 9)))

    @staticmethod
    def _disputes(practice, manager, now):
        """Two members disputed a recent treatment; the manager reversed each as a dispute."""
        actor = services.Actor.staff(manager)
        recent = LedgerEntry.objects.filter(membership__member__practice=practice, kind=EntryKind.REDEEM,
                                            service__kind=ServiceKind.TREATMENT,
                                            membership__status=MembershipStatus.ACTIVE).select_related("membership")
        done = 0
        for days_ago in (10, 3):
            target = now - timedelta(days=days_ago)
            for entry in recent.filter(created_at__lte=target - timedelta(hours=4)).order_by("-created_at", "-id")[:5]:
                try:
                    services.reverse_entry(entry=entry, actor=actor, reason="Member says the treatment was not done",
                                           idempotency_key=f"seed:dispute:{done}", now=target, dispute=True)
                except LedgerError:
                    continue          # already reversed, or the units went elsewhere: the next one
                done += 1
                break

    def _reconciliation_history(self, practice, manager, today, tz, now):
        """The practice's spreadsheet, imported three weeks ago (checked first, then imported), with
        the few rows it had wrong; nightly reconciliation runs since, and the manager working the
        discrepancies off: each through the same import, engine and resolve service as the pages.
        The demo has no processor account connected, so the processor side is not compared."""
        def night(days_ago):
            return min(datetime.combine(today - timedelta(days=days_ago), time(3, 0), tzinfo=tz), now)

        services_by_code = {s.code: s for s in Service.objects.filter(practice=practice).order_by("id")}
        rows = {row.member_number: row for row in ledger_rows(practice_id=practice.pk) if row.status != "cancelled"}
        members = {m.member_number: m for m in Member.objects.filter(practice=practice, member_number__in=list(rows))}
        started = dict(Membership.objects.filter(member__practice=practice).exclude(status=MembershipStatus.CANCELLED)
                       .values_list("member__member_number", "started_at"))
        numbers = sorted(rows)

        def pick(test, skip=()):
            return next((number for number in numbers if number not in skip and test(rows[number])), None)

        promo = [pick(lambda r: r.tier_code == "glow" and r.status == "active")]
        promo.append(pick(lambda r: r.tier_code == "glow" and r.status == "active", skip=promo))
        upgraded = pick(lambda r: r.tier_code == "luxe" and r.status == "active")
        counted = pick(lambda r: r.status == "active" and r.balances.get("hydrafacial"), skip=promo + [upgraded])
        paused = pick(lambda r: r.status == "paused")
        left_out = pick(lambda r: r.status == "active", skip=promo + [upgraded, counted])

        def sheet(*, fixed: bool) -> bytes:
            out = io.StringIO()
            writer = csv.writer(out)
            writer.writerow(["Member #", "First name", "Last name", "Email", "Mobile", "Plan", "Member since",
                             "Monthly price", "Status"] + [f"{svc.name} balance" for svc in services_by_code.values()])
            for number in numbers:
                row, member = rows[number], members[number]
                if number == left_out and not fixed:
                    continue                                        # added to the sheet later
                tier, price = row.tier_code, row.price_cents
                status = "past due" if row.status in ("past_due", "lapsed") else row.status
                balances = dict(row.balances)
                if number in promo:
                    price = 17900                                   # still on last year's rate
                if number == upgraded:
                    tier, price = "glow", 19900                     # the upgrade never reached the sheet
                if number == counted:
                    balances["hydrafacial"] += 1
                if number == paused and not fixed:
                    status = "active"
                writer.writerow([number, member.first_name, member.last_name, member.email, member.phone, tier,
                                 started[number].astimezone(tz).date().isoformat(), f"${price / 100:.2f}", status]
                                + [(f"${balances.get(code, 0) / 100:.2f}" if svc.kind == ServiceKind.CREDIT
                                    else balances.get(code, 0)) for code, svc in services_by_code.items()])
            return out.getvalue().encode()

        def load(content: bytes, at: datetime) -> None:
            for dry_run in (True, False):
                batch = create_import_batch(practice=practice, file_name="Glow members.csv", content=content,
                                            dry_run=dry_run, user=manager, now=at)
                batch = run_import_batch(batch_id=batch.pk, now=at)
                if batch.status not in (ImportStatus.VALIDATED, ImportStatus.IMPORTED):
                    raise CommandError(f"The demo spreadsheet did not import: {batch.errors[:3]}")

        sources = {**registered_sources(), "processor": _no_processor_account}

        def reconcile(days_ago: int) -> None:
            run_reconciliation(practice=practice, now=night(days_ago), trigger="schedule", sources=sources)

        def resolve(number, kind, note, days_ago, hour):
            row = Discrepancy.objects.filter(practice=practice, member_number=number, kind=kind,
                                             resolved_at__isnull=True).first()
            if row is not None:
                at = min(datetime.combine(today - timedelta(days=days_ago), time(hour, 15), tzinfo=tz), now)
                resolve_discrepancy(discrepancy=row, actor=services.Actor.staff(manager), note=note, now=at)

        load(sheet(fixed=False), night(23).replace(hour=16))
        reconcile(22)
        resolve(paused, DiscrepancyKind.STATUS_MISMATCH, "Paused at the desk; the sheet was not updated", 22, 11)
        resolve(counted, DiscrepancyKind.BALANCE_MISMATCH, "Sheet counted a facial twice", 21, 15)
        load(sheet(fixed=True), night(16).replace(hour=17))       # the member left out, added to the sheet
        reconcile(15)
        resolve(promo[0], DiscrepancyKind.PRICE_MISMATCH, "Promo rate ended in March; the ledger is right", 14, 10)
        reconcile(8)
        resolve(upgraded, DiscrepancyKind.TIER_MISMATCH, "Upgraded at the desk in person", 6, 12)
        resolve(upgraded, DiscrepancyKind.PRICE_MISMATCH, "Upgraded at the desk in person", 6, 12)
        reconcile(1)


def _no_processor_account(**kwargs):
    raise SourceSkipped("the demo practice has no processor account connected")
