"""What the expiring-credit notices earn: per month of the boundary they warned about, the credit
they named (what the dry run said would expire when it went, recorded on each sent notice), how much
of it the member used between the notice going and the boundary (redemptions of that service not
reversed since, at most what was named), the rest expired, and the share used. Values at list price (the service's
unit value), as the breakage series. Boundaries still ahead are counted apart: their outcome is not known yet."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, tzinfo

from django.db.models import Exists, OuterRef
from django.utils import timezone

from memberships.models import EntryKind, LedgerEntry, Service

from ..models import MemberNotice, NoticeKind, NoticeStatus
from .months import aware, for_practice, month_starts


@dataclass
class NudgeMonth:
    month: date
    notices: int = 0
    nudged_cents: int = 0
    used_cents: int = 0

    @property
    def expired_cents(self) -> int:
        return self.nudged_cents - self.used_cents

    @property
    def share(self) -> float | None:
        return self.used_cents / self.nudged_cents if self.nudged_cents else None

    @property
    def share_display(self) -> str:
        return "—" if self.share is None else f"{round(self.share * 100)}%"


@dataclass
class NudgeEffect:
    months: list[NudgeMonth] = field(default_factory=list)
    ahead: int = 0          # sent notices whose boundary is still to come

    @property
    def total(self) -> NudgeMonth:
        return NudgeMonth(month=self.months[0].month if self.months else date.min,
                          notices=sum(m.notices for m in self.months),
                          nudged_cents=sum(m.nudged_cents for m in self.months),
                          used_cents=sum(m.used_cents for m in self.months))


def _net_redemptions(notices: list[MemberNotice]) -> dict[tuple[int, int], list[tuple[datetime, int]]]:
    """(membership, service) → [(when, units used)] over the notices' windows: the redemptions no
    reversal names. A redemption undone — within the window or after the boundary (its credit then
    comes back and expires late) — did not use the credit in time."""
    if not notices:
        return {}
    services = {int(sid) for notice in notices for sid in notice.nudged}
    start = min(_went(notice) for notice in notices)
    end = max(notice.boundary_at for notice in notices)
    entries = LedgerEntry.objects.filter(
        ~Exists(LedgerEntry.objects.filter(reverses=OuterRef("pk"))), kind=EntryKind.REDEEM,
        membership_id__in={notice.membership_id for notice in notices}, service_id__in=services,
        created_at__gte=start, created_at__lt=end)
    found = defaultdict(list)
    for membership_id, service_id, when, quantity in entries.values_list("membership_id", "service_id", "created_at",
                                                                          "quantity"):
        found[(membership_id, service_id)].append((when, -quantity))
    return found


def _went(notice: MemberNotice) -> datetime:
    """When the member was told (what it named is what would expire then), else when it was planned."""
    return notice.sent_at or notice.created_at


def _used(notice: MemberNotice, service_id: int, quantity: int, redemptions) -> int:
    used = sum(q for when, q in redemptions.get((notice.membership_id, service_id), [])
               if _went(notice) <= when < notice.boundary_at)
    return max(0, min(quantity, used))


def nudge_effect(*, practice_id: int | None, now: datetime, months: int = 12, zone: tzinfo | None = None) -> NudgeEffect:
    """The last `months` months of expiring-credit notices that went (email or SMS), by the month of
    their boundary (in `zone`, else the site's: the months of the series too)."""
    zone = zone or timezone.get_default_timezone()
    with timezone.override(zone):
        starts = month_starts(now=now, months=months)
        since = aware(starts[0])
    rows = {start: NudgeMonth(month=start) for start in starts}
    sent = for_practice(MemberNotice.objects.filter(kind=NoticeKind.EXPIRING_CREDIT, status=NoticeStatus.SENT,
                                                    boundary_at__gte=since), practice_id, "practice_id")
    effect = NudgeEffect(months=list(rows.values()), ahead=sent.filter(boundary_at__gt=now).count())
    notices = list(sent.filter(boundary_at__lte=now).only("membership_id", "nudged", "created_at", "sent_at",
                                                          "boundary_at"))
    redemptions = _net_redemptions(notices)
    values = dict(Service.objects.filter(pk__in={int(s) for n in notices for s in n.nudged})
                  .values_list("pk", "unit_value_cents"))
    for notice in notices:
        local = timezone.localtime(notice.boundary_at, zone)
        row = rows.get(local.date().replace(day=1))
        if row is None:
            continue
        row.notices += 1
        for sid, quantity in notice.nudged.items():
            value = values.get(int(sid), 0)
            row.nudged_cents += quantity * value
            row.used_cents += _used(notice, int(sid), quantity, redemptions) * value
    return effect
