"""Why members leave: the reasons members gave for cancelling on their own page (every cancellation
request in the window, whatever staff decided), most given first."""

from __future__ import annotations

from datetime import datetime, timedelta

from django.db.models import Count

from memberships.models import MemberRequest, MemberRequestKind, MemberRequestReason


def cancellation_reasons(*, practice_id: int | None, now: datetime, days: int = 365) -> list[tuple[str, int]]:
    rows = MemberRequest.objects.filter(kind=MemberRequestKind.CANCEL, created_at__gte=now - timedelta(days=days))
    if practice_id is not None:
        rows = rows.filter(practice_id=practice_id)
    counted = rows.values("reason").annotate(n=Count("id")).order_by("-n", "reason")
    labels = dict(MemberRequestReason.choices)
    return [(labels.get(row["reason"], row["reason"]), row["n"]) for row in counted]
