"""The group dashboard's figures, computed by the worker and read by the page.

`group_dashboard` reads every member, balance and expiry of the group: about a second of database
work for 20 locations and 100,000 members, too slow to repeat on every view and growing with the
group. So the worker computes them every GROUP_FIGURES_REFRESH_SECONDS (`refresh_all`, scheduled in
`medspa.schedules`) and stores them in one `GroupFigures` row per group; the page reads that row
(a few milliseconds whatever the group's size) and says when the figures were taken. The page
computes them itself only when there is no row yet, when the row is older than
GROUP_FIGURES_MAX_AGE_SECONDS (the worker is not keeping up: a manager never reads figures older than
that), or when the manager asks ("Refresh now").

Two refreshes at once (two workers, or the worker and a manager) both compute; the later moment is
kept, whichever finishes last. The stored form is plain JSON (`dump`/`load`); a row written by an
older shape of the figures fails to load and is recomputed, never shown wrong."""

from __future__ import annotations

import dataclasses
import logging
import time
import types
import typing
from datetime import date, datetime, timedelta, tzinfo
from zoneinfo import ZoneInfo

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from billing.models import GroupFigures
from memberships.models import Organization, Practice

from .figures import GroupDashboard, group_dashboard

logger = logging.getLogger(__name__)

# The stored form's version: raised when what a stored figure means changes, not only its shape (a
# row of another version is recomputed, never shown). 2: the failed-and-recovered chart in the
# group's zone.
VERSION = 2


# -- the stored form ------------------------------------------------------------------------------

def _encode(value):
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _encode(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, datetime):
        return {"at": value.isoformat(), "zone": str(value.tzinfo)}
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, tzinfo):
        return str(value)
    if isinstance(value, (list, tuple)):
        return [_encode(v) for v in value]
    if isinstance(value, dict) and all(isinstance(k, str) for k in value):
        return {k: _encode(v) for k, v in value.items()}
    if value is None or isinstance(value, (int, float, str)):
        return value
    raise TypeError(f"{type(value).__name__} has no stored form")


def _decode(hint, value):
    if value is None:
        return None
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        (inner,) = [a for a in args if a is not type(None)]
        return _decode(inner, value)
    if origin is dict:
        return {k: _decode(args[1], v) for k, v in value.items()}
    if origin is list:
        return [_decode(args[0], v) for v in value]
    if origin is tuple:
        return tuple(_decode(a, v) for a, v in zip(args, value, strict=True))
    if hint is datetime:
        return datetime.fromisoformat(value["at"]).astimezone(ZoneInfo(value["zone"]))
    if hint is date:
        return date.fromisoformat(value)
    if hint is tzinfo:
        return ZoneInfo(value)
    if dataclasses.is_dataclass(hint):
        hints = typing.get_type_hints(hint)
        return hint(**{f.name: _decode(hints[f.name], value[f.name]) for f in dataclasses.fields(hint) if f.init})
    if hint in (bool, int, float, str) and isinstance(value, (bool, int, float, str)):
        return hint(value)
    raise TypeError(f"cannot read {hint!r} from {value!r}")


def dump(board: GroupDashboard) -> dict:
    """JSON for `GroupFigures.data`: the practices by id, the rest as it is."""
    fields = {f.name: _encode(getattr(board, f.name)) for f in dataclasses.fields(board) if f.name != "practices"}
    return {"version": VERSION, "practice_ids": [p.pk for p in board.practices], **fields}


def load(data: dict, *, organization_id: int) -> GroupDashboard | None:
    """The dashboard back from `dump`'s JSON (one query for the group's practices); None when it was
    written in another shape, or when the group's practices are no longer those it was computed for
    (a practice left the group, joined it or was deleted: then it is recomputed, so a group is never
    shown the figures of a practice it no longer has)."""
    if not isinstance(data, dict) or data.get("version") != VERSION:
        return None
    try:
        hints = typing.get_type_hints(GroupDashboard)
        values = {f.name: _decode(hints[f.name], data[f.name])
                  for f in dataclasses.fields(GroupDashboard) if f.name != "practices"}
    except (KeyError, TypeError, ValueError) as exc:
        logger.warning("stored group figures could not be read (%s); recomputing", type(exc).__name__)
        return None
    practices = list(Practice.objects.filter(organization_id=organization_id).order_by("name", "id"))
    if sorted(p.pk for p in practices) != sorted(data.get("practice_ids") or []):
        return None
    return GroupDashboard(practices=practices, **values)


# -- computing and reading ------------------------------------------------------------------------

def refresh(*, organization_id: int, now: datetime | None = None) -> tuple[GroupDashboard, GroupFigures]:
    """Compute the group's figures as of `now` and store them, unless a later moment was stored
    meanwhile (then that one is returned)."""
    now = now or timezone.now()
    started = time.perf_counter()
    board = group_dashboard(organization_id=organization_id, now=now)
    took_ms = round((time.perf_counter() - started) * 1000)
    data = dump(board)
    with transaction.atomic():
        row = GroupFigures.objects.select_for_update().filter(organization_id=organization_id).first()
        if row is None:
            try:
                with transaction.atomic():
                    row = GroupFigures.objects.create(organization_id=organization_id, computed_at=now,
                                                      took_ms=took_ms, data=data)
                return board, row
            except IntegrityError:      # another refresh created it first: compare with it
                row = GroupFigures.objects.select_for_update().get(organization_id=organization_id)
        if row.computed_at >= now:
            return load(row.data, organization_id=organization_id) or board, row
        row.computed_at, row.took_ms, row.data, row.refreshing_since = now, took_ms, data, None
        row.save(update_fields=["computed_at", "took_ms", "data", "refreshing_since"])
    logger.info("group %s figures refreshed in %s ms", organization_id, took_ms)
    return board, row


def current(*, organization_id: int, now: datetime) -> tuple[GroupDashboard, GroupFigures]:
    """What the page shows: the stored figures, or fresh ones when there are none yet, they are
    older than GROUP_FIGURES_MAX_AGE_SECONDS, or they can't be read. Older figures are computed
    again by one request only: while it (or a worker) is at it, the others show the stored
    figures with their time instead of all computing the same thing at once."""
    row = GroupFigures.objects.filter(organization_id=organization_id).first()
    board = load(row.data, organization_id=organization_id) if row is not None else None
    if board is None:
        return refresh(organization_id=organization_id, now=now)
    if now - row.computed_at <= timedelta(seconds=settings.GROUP_FIGURES_MAX_AGE_SECONDS):
        return board, row
    if not _claim(organization_id, now):
        return board, row
    try:
        return refresh(organization_id=organization_id, now=now)
    except Exception:
        _release(organization_id, now)
        raise


def refresh_on_request(*, organization_id: int, now: datetime) -> tuple[GroupDashboard, GroupFigures]:
    """A manager's "Refresh now": recomputed unless the figures are under a minute old (a second
    click, or two managers at once, don't recompute them again)."""
    row = GroupFigures.objects.filter(organization_id=organization_id).first()
    if row is not None and now - row.computed_at < timedelta(seconds=60):
        board = load(row.data, organization_id=organization_id)
        if board is not None:
            return board, row
    return refresh(organization_id=organization_id, now=now)


def _claim(organization_id: int, now: datetime) -> bool:
    """Mark the group as being refreshed, unless another worker has marked it in the last
    GROUP_FIGURES_REFRESH_SECONDS (a crashed worker's mark lapses). No row yet: nothing to mark."""
    lapsed = now - timedelta(seconds=settings.GROUP_FIGURES_REFRESH_SECONDS)
    claimed = (GroupFigures.objects.filter(organization_id=organization_id)
               .filter(Q(refreshing_since__isnull=True) | Q(refreshing_since__lt=lapsed))
               .update(refreshing_since=now))
    return claimed == 1 or not GroupFigures.objects.filter(organization_id=organization_id).exists()


def _release(organization_id: int, claimed_at: datetime) -> None:
    """Undo this refresh's `_claim` after it failed, so the next one need not wait for it to lapse."""
    GroupFigures.objects.filter(organization_id=organization_id, refreshing_since=claimed_at).update(
        refreshing_since=None)


def refresh_all(*, when: datetime | None = None) -> dict[str, int]:
    """The worker's job: every group with a practice, unless another worker is on it. One group's
    failure is logged and the others go on."""
    counts = {"refreshed": 0, "skipped": 0, "failed": 0}
    for organization_id in Organization.objects.filter(practices__isnull=False).distinct().values_list("pk", flat=True):
        now = when or timezone.now()      # each group as of the moment its figures are taken
        if not _claim(organization_id, now):
            counts["skipped"] += 1
            continue
        try:
            refresh(organization_id=organization_id, now=now)
            counts["refreshed"] += 1
        except Exception:
            logger.exception("group %s figures could not be refreshed", organization_id)
            _release(organization_id, now)
            counts["failed"] += 1
    return counts
