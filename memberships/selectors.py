"""Reads the pages and the API share. They never write."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

from django.db import connection
from django.db.models import Case, F, IntegerField, Q, QuerySet, Subquery, Value, When
from django.db.models.expressions import RawSQL
from django.db.models.functions import Lower

from .models import EntitlementBalance, Event, Member, Membership, MembershipStatus, Practice, TierBenefit


def _phone_candidates(digits: str) -> list[str]:
    """E.164 forms a typed phone number may be stored as (North American numbers by default)."""
    if len(digits) == 10:
        return [f"+1{digits}"]
    if len(digits) == 11 and digits.startswith("1"):
        return [f"+{digits}"]
    return [f"+{digits}"]


# From this many characters a name is searched anywhere in "first last" on PostgreSQL, through the
# trigram index (migration 0019); a shorter one is a prefix of the first or last name (a trigram index
# cannot narrow one or two letters).
FRAGMENT_FROM = 3
# A fragment inside names (not at their start) is looked for among the first this many members the
# trigram index yields, beside every exact and prefix match: the page shows 25, and a fragment as
# common as "son" is in thousands of names, whose rows would cost more to read and sort than the
# search is worth (the desk types more). The API's search (no limit) takes every match.
FRAGMENT_SAMPLE = 500


def search_members(*, practice_id: int | None = None, query: str, limit: int | None = 25,
                   practice_ids: list[int] | None = None) -> QuerySet[Member]:
    """Name, phone, email or member number, in one practice (`practice_id`), in several
    (`practice_ids`: a practice and the others of its group) or, with neither, in all.

    By name: on PostgreSQL a fragment of three letters or more anywhere in "first last" (the trigram
    index; with a limit, every exact and prefix match and up to FRAGMENT_SAMPLE others), else — and
    always on SQLite — a prefix of the first name, the last name or "first last". Exact names
    first, then names that start with the query, then the rest; by last name, first name within
    each. Phone, email and member number are equality lookups. Each branch is an indexed lookup, so
    it stays fast on 100,000 members."""
    q = " ".join((query or "").split())
    members = Member.objects.all()
    if practice_ids is not None:
        members = members.filter(practice_id__in=practice_ids)
    elif practice_id is not None:
        members = members.filter(practice_id=practice_id)
    if not q:
        return members.none()
    lowered = q.lower()
    digits = "".join(ch for ch in q if ch.isdigit())
    condition = Q(member_number__in={q, q.upper()})
    keys = {"email_lower": Lower("email"), "last_lower": Lower("last_name"), "first_lower": Lower("first_name")}
    order = ["last_lower", "first_lower", "id"]
    if "@" in q:
        condition |= Q(email_lower=lowered)
    elif len(digits) >= 7 and not any(ch.isalpha() for ch in q):
        condition |= Q(phone__in=_phone_candidates(digits))
    elif connection.vendor == "postgresql" and len(lowered) >= FRAGMENT_FROM:
        keys["match_rank"] = Case(
            When(search_name=lowered, then=Value(0)),
            When(Q(search_name__startswith=lowered) | Q(last_lower__startswith=lowered), then=Value(1)),
            default=Value(2), output_field=IntegerField())
        order.insert(0, "match_rank")
        if limit is None:
            condition |= Q(search_name__contains=lowered)
        else:
            condition = Q(pk__in=_best_by_name(members, lowered, condition, keys, order, limit))
    else:
        condition |= Q(search_name__startswith=lowered) | Q(last_lower__startswith=lowered)
    # Ordered by lower-cased names: an ordering no index provides, so the database gathers the few
    # matches through the indexes above and sorts them, instead of walking the whole name index in
    # order hoping to meet 25 matches early (slow when the prefix sorts late, e.g. "gar").
    members = members.annotate(**keys).filter(condition).order_by(*order)
    return members[:limit] if limit is not None else members


def _best_by_name(members: QuerySet[Member], lowered: str, condition: Q, keys: dict, order: list[str],
                  limit: int) -> RawSQL:
    """The ids of the `limit` best matches of a name fragment, as a subquery of the members' own
    statement: the union of up to FRAGMENT_SAMPLE members whose name holds it (the trigram index)
    and the `limit` best exact or prefix matches (the name indexes), each with its sort keys, sorted
    and cut there — so the members' rows are read by id for these few only, in the same statement."""
    columns = ["best_id", *(key for key in order if key != "id")]
    keys = {**keys, "best_id": F("pk")}
    inside = members.filter(search_name__contains=lowered).annotate(**keys).values_list(*columns)
    # the prefix matches' own best `limit` (their order is the page's): "gar" starts thousands of
    # names, and only the first 25 of them can reach the page
    starting = (members.annotate(**keys)
                .filter(condition | Q(search_name__startswith=lowered) | Q(last_lower__startswith=lowered))
                .order_by(*order).values_list(*columns)[:limit])
    best = inside[:FRAGMENT_SAMPLE].union(starting).order_by(*[("best_id" if o == "id" else o) for o in order])
    sql, params = best[:limit].query.sql_with_params()
    return RawSQL(f"SELECT best.best_id FROM ({sql}) AS best", params)


def searchable_practice_ids(user) -> list[int] | None:
    """The practices whose members `user` finds in the search: their own and, when it belongs to a
    group, the group's other practices (a member of the group may be seen and redeem at any of its
    locations). None (all) for a superuser without a profile; one query."""
    scope = practice_scope(user)
    if scope is None:
        return None
    group = Practice.objects.filter(pk=scope).values("organization_id")
    ids = set(Practice.objects.filter(Q(pk=scope) | Q(organization_id=Subquery(group)))
              .values_list("pk", flat=True))
    return sorted(ids | {scope})


def current_membership(*, member: Member) -> Membership | None:
    """The open membership, else the latest cancelled one (its frozen balance still shows)."""
    memberships = Membership.objects.filter(member=member).select_related("tier", "pending_tier")
    open_one = memberships.exclude(status=MembershipStatus.CANCELLED).first()
    return open_one or memberships.order_by("-cancelled_at", "-id").first()


@dataclass(frozen=True)
class BalanceLine:
    service_id: int
    service_name: str
    service_kind: str
    balance: int
    reserved: int
    available: int
    per_cycle: int | None
    rollover_in_words: str
    frozen: bool
    balance_display: str
    available_display: str
    per_cycle_display: str = ""


def timeline(*, member: Member, limit: int = 50) -> QuerySet[Event]:
    return Event.objects.filter(member=member).order_by("-created_at", "-id")[:limit]


# --- the staff pages --------------------------------------------------------------------------

@dataclass(frozen=True)
class ChartFlag:
    code: str
    label: str
    level: str  # "danger" | "warning" | "info"


@dataclass
class ChartPanel:
    """Everything the chart panel shows, read in a fixed number of queries whatever the history."""

    member: Member
    membership: Membership | None
    balances: list[BalanceLine]
    flags: list[ChartFlag]
    events: list[Event]
    reversible_entry_ids: set[int]
    reversed_entry_ids: set[int]
    version: int
    next_charge_at: object | None
    next_charge_cents: int | None
    # Figures the edges registered (`register_chart_count`), e.g. the member's open record exceptions.
    counts: dict[str, int] = field(default_factory=dict)


# Counts an edge shows on the chart page, read inside the chart's one membership (or member) query,
# so they cost no query of their own. name -> build(member_path): a subquery expression, where
# `member_path` is how the outer query reaches the member ("member__" from a Membership, "" from a
# Member). The core never imports the edges: they register here when their app is ready.
CHART_COUNTS: dict[str, Callable[[str], Any]] = {}


def register_chart_count(name: str, build: Callable[[str], Any]) -> None:
    CHART_COUNTS[name] = build


def _chart_counts(member_path: str) -> dict[str, Any]:
    return {f"chart_count_{name}": build(member_path) for name, build in CHART_COUNTS.items()}


def _counts_of(row) -> dict[str, int]:
    return {name: getattr(row, f"chart_count_{name}", 0) or 0 for name in CHART_COUNTS}


# The columns the chart panel and the redeem/lifecycle checks read (fewer columns, faster to build).
CHART_FIELDS = (
    "id", "member_id", "tier_id", "status", "started_at", "current_period_end", "cycle_number", "last_refill_at",
    "paused_until", "cancelled_at", "paid_through", "pending_tier_id",
    "member__id", "member__practice_id", "member__member_number", "member__first_name", "member__last_name",
    "member__email", "member__phone",
    "member__practice__id", "member__practice__frozen_credit_usable_until_period_end",
    "member__practice__redemption_when_past_due", "member__practice__automation_stage", "member__practice__timezone",
    "tier__id", "tier__name", "tier__version", "tier__price_cents", "tier__interval", "tier__currency",
    "pending_tier__id", "pending_tier__name", "pending_tier__price_cents",
)


def _membership_for_chart(member_id: int, scope: Q) -> Membership | None:
    """The open membership, else the latest cancelled one, with its member, practice and tiers and
    the id of its latest ledger entry (the chart's version) — one query."""
    from django.db.models import Case, IntegerField, Max, OuterRef, Subquery, Value, When

    from .models import ChartFlag as StoredChartFlag, ChartFlagStatus, LedgerEntry
    from .services.location_prices import paid_price_expression
    from .services.stages import effective_stage_expression

    last_entry = (LedgerEntry.objects.filter(membership_id=OuterRef("pk")).order_by()
                  .values("membership_id").annotate(m=Max("id")).values("m"))
    # The newest open stored chart flag (e.g. dunning's "Card declined — update card before treatment").
    open_flag = (StoredChartFlag.objects.filter(member_id=OuterRef("member_id"), status=ChartFlagStatus.OPEN)
                 .order_by("-opened_at", "-id").values("text")[:1])
    return (
        Membership.objects.filter(scope, member_id=member_id)
        .select_related("member__practice", "tier", "pending_tier")
        .only(*CHART_FIELDS)
        .annotate(
            chart_version=Subquery(last_entry),
            open_flag_text=Subquery(open_flag),
            effective_stage=effective_stage_expression("member__"),   # the member's location's stage
            paid_cents=paid_price_expression("tier"), pending_paid_cents=paid_price_expression("pending_tier"),
            closed=Case(When(status=MembershipStatus.CANCELLED, then=Value(1)), default=Value(0),
                        output_field=IntegerField()),
            **_chart_counts("member__"),
        )
        .order_by("closed", "-cancelled_at", "-id")
        .first()
    )


def balance_lines(*, membership: Membership) -> list[BalanceLine]:
    """Balances with their tier benefit joined in (one query); a service the tier no longer
    includes shows only while something is left of it."""
    from django.db.models import F, FilteredRelation

    rows = (
        EntitlementBalance.objects.filter(membership_id=membership.pk)
        .select_related("service")
        .annotate(
            tier_benefit=FilteredRelation("service__benefits",
                                          condition=Q(service__benefits__tier_id=membership.tier_id)),
            b_id=F("tier_benefit__id"),
            b_per_cycle=F("tier_benefit__quantity_per_cycle"),
            b_rollover=F("tier_benefit__rollover"),
            b_cap=F("tier_benefit__rollover_cap"),
            b_after=F("tier_benefit__expire_after_cycles"),
        )
        .order_by("service__name")
    )
    lines = []
    for bal in rows:
        benefit = None
        if bal.b_id is not None:
            benefit = TierBenefit(id=bal.b_id, tier_id=membership.tier_id, service=bal.service,
                                  quantity_per_cycle=bal.b_per_cycle, rollover=bal.b_rollover,
                                  rollover_cap=bal.b_cap, expire_after_cycles=bal.b_after)
        if benefit is None and bal.balance == 0:
            continue
        lines.append(BalanceLine(
            service_id=bal.service_id,
            service_name=bal.service.name,
            service_kind=bal.service.kind,
            balance=bal.balance,
            reserved=bal.reserved,
            available=bal.available,
            per_cycle=benefit.quantity_per_cycle if benefit else None,
            rollover_in_words=benefit.rollover_in_words if benefit else "not in the current tier",
            frozen=bal.frozen_at is not None,
            balance_display=bal.service.format_quantity(bal.balance),
            available_display=bal.service.format_quantity(bal.available),
            per_cycle_display=bal.service.format_quantity(benefit.quantity_per_cycle) if benefit else "",
        ))
    return lines


def practice_scope(user) -> int | None:
    """The practice a staff user works for; None (all practices) for a superuser without a profile.
    Anyone else without a profile is refused (403), never shown every practice."""
    from django.core.exceptions import PermissionDenied

    profile = getattr(user, "staff_profile", None)
    if profile is not None:
        return profile.practice_id
    if user.is_superuser:
        return None
    raise PermissionDenied("No practice is linked to this user.")


def staff_scope(user, prefix: str = "") -> Q:
    """Rows of the practice `user` works for, as a join (no separate query for the profile). A
    superuser sees every practice; a user without a profile sees nothing."""
    if user.is_superuser:
        return Q()
    return Q(**{f"{prefix}practice__staff__user_id": user.pk})


def chart_flags(membership: Membership | None, *, now) -> list[ChartFlag]:
    if membership is None:
        return [ChartFlag("no_membership", "No membership", "info")]
    s = membership.status
    flags = []
    stored = getattr(membership, "open_flag_text", None)
    if stored:
        flags.append(ChartFlag("chart_flag", stored, "danger"))
    if s == MembershipStatus.PAST_DUE and not stored:
        flags.append(ChartFlag("card_declined", "Card declined — payment past due", "danger"))
    elif s == MembershipStatus.LAPSED:
        flags.append(ChartFlag("lapsed", "Lapsed — payment never recovered", "danger"))
    elif s == MembershipStatus.PAUSED:
        until = f" until {membership.paused_until:%b %d, %Y}" if membership.paused_until else ""
        flags.append(ChartFlag("paused", f"Paused{until}", "warning"))
    elif s == MembershipStatus.PENDING:
        flags.append(ChartFlag("pending", "Pending first payment", "warning"))
    elif s == MembershipStatus.CANCELLED:
        usable = (membership.member.practice.frozen_credit_usable_until_period_end
                  and membership.paid_through is not None and now < membership.paid_through)
        until = membership.member.practice.local_date(membership.paid_through) if usable else None   # its day there
        detail = f"frozen balance usable until {until:%b %d, %Y}" if usable else "balance frozen"
        flags.append(ChartFlag("cancelled", f"Cancelled — {detail}", "danger"))
    if membership.pending_tier_id:
        flags.append(ChartFlag("tier_change", f"Moves to {membership.pending_tier.name} at the next cycle", "info"))
    return flags


def chart_panel(*, member_id: int, user, now, timeline_limit: int = 30) -> ChartPanel | None:
    """The chart panel of one member, or None when the member is not in the user's practice.
    Queries: membership (+member, practice, tiers, version, practice scope), balances (+benefits),
    timeline (+whether each redemption was reversed) — three, however long the history."""
    from django.db.models import BigIntegerField, Exists, OuterRef
    from django.db.models.fields.json import KeyTextTransform
    from django.db.models.functions import Cast

    from .models import EntryKind, EventKind, LedgerEntry

    membership = _membership_for_chart(member_id, staff_scope(user, "member__"))
    if membership is not None:
        member = membership.member
    else:
        member = (Member.objects.select_related("practice").filter(staff_scope(user), pk=member_id)
                  .annotate(**_chart_counts("")).first())
        if member is None:
            return None
    balances = balance_lines(membership=membership) if membership is not None else []
    reversal = LedgerEntry.objects.filter(kind=EntryKind.REVERSE, reverses_id=OuterRef("entry_ref"))
    events = list(
        Event.objects.filter(member_id=member.pk)
        .select_related("actor_user")
        .annotate(entry_ref=Cast(KeyTextTransform("entry_id", "payload"), BigIntegerField()))
        .annotate(is_reversed=Exists(reversal))
        # where a redemption happened: its entry's location (the desk's), shown on the timeline
        .annotate(entry_location=Subquery(LedgerEntry.objects.filter(pk=OuterRef("entry_ref"))
                                          .values("location__name")[:1]))
        .order_by("-created_at", "-id")[:timeline_limit]
    )
    redeemed = {e.entry_ref: e.is_reversed for e in events if e.kind == EventKind.REDEEMED and e.entry_ref}
    next_at = next_cents = None
    if membership is not None and membership.status in (MembershipStatus.ACTIVE, MembershipStatus.PAST_DUE,
                                                        MembershipStatus.PENDING):
        # the practice's calendar day (22:00 on Jan 31 in Honolulu is Feb 1 in UTC)
        next_at = member.practice.local_date(membership.current_period_end) if membership.current_period_end else None
        tier_price = (membership.pending_tier or membership.tier).price_cents       # a location's own price first
        paid = "pending_paid_cents" if membership.pending_tier_id else "paid_cents"
        next_cents = getattr(membership, paid, tier_price)
    return ChartPanel(
        member=member,
        membership=membership,
        balances=balances,
        flags=chart_flags(membership, now=now),
        events=events,
        reversible_entry_ids={k for k, done in redeemed.items() if not done},
        reversed_entry_ids={k for k, done in redeemed.items() if done},
        version=(getattr(membership, "chart_version", None) or 0) if membership is not None else 0,
        next_charge_at=next_at,
        next_charge_cents=next_cents,
        counts=_counts_of(membership if membership is not None else member),
    )


def changed_since(*, membership_id: int, service_id: int, version: int) -> bool:
    """Whether a ledger entry for this balance was written after the chart the user saw."""
    from .models import LedgerEntry

    return LedgerEntry.objects.filter(membership_id=membership_id, service_id=service_id, id__gt=version).exists()


def open_chart_flags(*, member: Member) -> QuerySet:
    """The stored banners the chart shows now (e.g. "Card declined — update card before treatment"),
    raised and cleared through `memberships.services.set_chart_flag` / `clear_chart_flag`."""
    from .models import ChartFlag as StoredChartFlag, ChartFlagStatus

    return StoredChartFlag.objects.filter(member=member, status=ChartFlagStatus.OPEN).order_by("opened_at", "id")
