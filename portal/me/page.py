"""What the member's own page shows, read in a handful of queries: the tier and its price, the
status, balances per benefit with the rule in the chart's words, what expires at the next boundary
(the tier-change page's own dry run, `preview_next_boundary`), units held for a booked appointment,
the next charge, the last 12 months of refills, redemptions and payments, the agreement they
accepted, and their requests. Only what the member's own page needs: no notes, no staff names."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta, tzinfo

from django.db.models import Q

from billing.dunning.quiet import member_zone
from billing.models import Invoice, InvoiceStatus
from memberships.display import format_money
from memberships.models import (
    AgreementAcceptance,
    EntryKind,
    LedgerEntry,
    Member,
    MemberRequest,
    Membership,
    MembershipStatus,
    Reservation,
    ReservationStatus,
    Service,
)
from memberships.selectors import BalanceLine, balance_lines, current_membership
from memberships.services.location_prices import membership_price
from memberships.services.refill import preview_next_boundary

HISTORY_DAYS = 365
HISTORY_KINDS = {EntryKind.GRANT: "Refill", EntryKind.REDEEM: "Used"}
# A reversal of one of those (a treatment recorded by mistake, a refill taken back), by what it undid.
REVERSAL_WORDS = {EntryKind.REDEEM: "Given back", EntryKind.GRANT: "Refill withdrawn"}


@dataclass(frozen=True)
class HistoryLine:
    when: datetime
    what: str
    amount: str


@dataclass
class MemberPage:
    member: Member
    membership: Membership | None
    zone: tzinfo | None = None      # the member's own clinic's zone: the dates her notices name
    balances: list[BalanceLine] = field(default_factory=list)
    expiring: list[str] = field(default_factory=list)
    boundary: datetime | None = None
    holds: list[str] = field(default_factory=list)
    next_charge: str = ""
    next_charge_at: datetime | None = None
    overdue_since: datetime | None = None   # past due: the renewal whose payment did not go through
    history: list[HistoryLine] = field(default_factory=list)
    agreement: AgreementAcceptance | None = None
    requests: list[MemberRequest] = field(default_factory=list)
    price: str = ""                 # what the membership pays (its clinic's own price, if it has one)
    pending_price: str = ""         # the same for the tier it moves to at the next renewal

    @property
    def can_pause(self) -> bool:
        return self.membership is not None and self.membership.status == MembershipStatus.ACTIVE

    @property
    def can_cancel(self) -> bool:
        return self.membership is not None and self.membership.status != MembershipStatus.CANCELLED

    @property
    def open_kinds(self) -> set[str]:
        return {request.kind for request in self.requests if request.status == "pending"}


def _expiring(membership: Membership) -> list[str]:
    tier = membership.pending_tier or membership.tier
    expiring = {sid: q for sid, q in preview_next_boundary(membership=membership, tier=tier).items() if q > 0}
    services = sorted(Service.objects.in_bulk(list(expiring)).values(), key=lambda s: s.name)
    return [f"{service.name}: {service.format_quantity(expiring[service.pk])}" for service in services]


def _holds(membership: Membership, *, zone: tzinfo) -> list[str]:
    held = Reservation.objects.filter(membership=membership, status=ReservationStatus.HELD).select_related("service")
    return [f"{row.service.name}: {row.service.format_quantity(row.quantity)} held for a booked appointment "
            f"(since {row.created_at.astimezone(zone):%b %d})" for row in held.order_by("created_at", "id")]


def _history(membership: Membership, *, since: datetime) -> list[HistoryLine]:
    lines = []
    shown = Q(kind__in=list(HISTORY_KINDS)) | Q(kind=EntryKind.REVERSE, reverses__kind__in=list(REVERSAL_WORDS))
    entries = (LedgerEntry.objects.filter(shown, membership__member_id=membership.member_id, created_at__gte=since)
               .select_related("service", "location", "reverses"))
    for entry in entries:
        where = f" at {entry.location.name}" if entry.location is not None else ""   # the clinic it was used at
        what = REVERSAL_WORDS[entry.reverses.kind] if entry.kind == EntryKind.REVERSE else HISTORY_KINDS[entry.kind]
        lines.append(HistoryLine(entry.created_at, f"{what}: {entry.service.name}{where}",
                                 entry.service.format_quantity(abs(entry.quantity))))
    invoices = Invoice.objects.filter(membership__member_id=membership.member_id, status=InvoiceStatus.PAID,
                                      paid_at__gte=since)
    for invoice in invoices:
        lines.append(HistoryLine(invoice.paid_at, "Payment", format_money(invoice.amount_paid_cents, invoice.currency)))
    return sorted(lines, key=lambda line: line.when, reverse=True)


def _next_charge(membership: Membership, *, now: datetime) -> tuple[str, datetime | None]:
    """The renewal to come (an active membership's period end ahead); none for a renewal that did not
    happen (past due: its payment failed; paused; a period end already passed)."""
    if not _renews_ahead(membership, now=now):
        return "", None
    tier = membership.pending_tier or membership.tier
    price = membership_price(membership, tier=tier)               # the location's own price, if it has one
    return format_money(price.cents, tier.currency), membership.current_period_end


def _renews_ahead(membership: Membership, *, now: datetime) -> bool:
    end = membership.current_period_end
    return membership.status == MembershipStatus.ACTIVE and end is not None and end > now


def member_page(*, member: Member, now: datetime) -> MemberPage:
    membership = current_membership(member=member)
    page = MemberPage(member=member, membership=membership, zone=member_zone(member),
                      agreement=(AgreementAcceptance.objects.filter(member=member).select_related("agreement")
                                 .order_by("-accepted_at").first()))
    if membership is None:
        return page
    page.balances = balance_lines(membership=membership)
    page.price = membership_price(membership).display
    if membership.pending_tier is not None:
        page.pending_price = membership_price(membership, tier=membership.pending_tier).display
    if membership.status != MembershipStatus.CANCELLED:
        page.expiring = _expiring(membership)
        page.boundary = membership.current_period_end if _renews_ahead(membership, now=now) else None
        page.holds = _holds(membership, zone=page.zone)
    page.next_charge, page.next_charge_at = _next_charge(membership, now=now)
    if membership.status == MembershipStatus.PAST_DUE:
        page.overdue_since = membership.current_period_end
    page.history = _history(membership, since=now - timedelta(days=HISTORY_DAYS))
    page.requests = list(MemberRequest.objects.filter(member=member).order_by("-created_at", "-id")[:5])
    return page
