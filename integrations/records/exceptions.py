"""Staff close what the record reported and the ledger did not act on by itself (`RecordException`):

- `resolve_record_exception`: with a note saying what was done ("redeemed by hand", "not a member
  visit", "linked the patient"); any kind.
- `apply_record_exception`: a treatment held for review (reported before the `redemptions` stage)
  is spent now through the ledger, keyed by the record's appointment id — the same key the
  record's own webhook would use, so it is spent once whoever comes first. Before `redemptions`
  only a manager who confirms may do it.
- `dismiss_record_exception`: a held treatment is closed without spending.

Each locks the exception first and changes only an open one, so a double submit (or two desks at
once) acts once; the second call returns the row as the first left it. Each writes its audit row when
it changed something (`ip_address`: where the staff member's request came from).
"""

from __future__ import annotations

from datetime import datetime

from django.db import transaction

from integrations.models import RecordException, RecordExceptionKind, RecordExceptionStatus
from memberships import selectors as ledger
from memberships import services
from memberships.errors import LedgerError, MembershipNotRedeemable, NotAllowed, ReasonRequired
from memberships.models import AutomationStage
from memberships.services.common import write_audit
from memberships.services.stages import location_stage_at_least

from .inbound import spend_for_appointment

MANAGER_PERMISSION = "memberships.view_dashboard"


class NotApplicable(LedgerError):
    code = "not_applicable"
    http_status = 409


def _lock(record_exception: RecordException) -> RecordException:
    return (RecordException.objects.select_for_update(of=("self",))
            .select_related("practice", "member", "service").get(pk=record_exception.pk))


def _close(row: RecordException, *, status: str, note: str, user, now: datetime, action: str,
           ip_address: str | None) -> RecordException:
    RecordException.objects.filter(pk=row.pk, status=RecordExceptionStatus.OPEN).update(
        status=status, resolution_note=note[:2000], resolved_by=user, resolved_at=now)
    row.status, row.resolution_note, row.resolved_by, row.resolved_at = status, note[:2000], user, now
    actor = services.Actor.staff(user, ip_address=ip_address) if user is not None else services.Actor.system()
    write_audit(actor=actor, action=action, obj=row, member_id=row.member_id, now=now,
                detail={"kind": row.kind, "status": row.status, "appointment": row.appointment_ref})
    return row


@transaction.atomic
def resolve_record_exception(*, record_exception: RecordException, user, note: str, now: datetime,
                             ip_address: str | None = None) -> RecordException:
    """Close an exception with a note (what was done). An exception closed already stays as it is."""
    if not note.strip():
        raise ReasonRequired("Say how it was resolved.")
    row = _lock(record_exception)
    if row.status != RecordExceptionStatus.OPEN:
        return row
    return _close(row, status=RecordExceptionStatus.RESOLVED, note=note.strip(), user=user, now=now,
                  action="record_exception_resolve", ip_address=ip_address)


def needs_manager(practice, *, member=None) -> bool:
    """Before `redemptions` (the member's home location's stage, else the practice's), spending a
    held treatment needs a manager who confirms it."""
    location = member.home_location if member is not None and member.home_location_id else None
    return not location_stage_at_least(practice, location, AutomationStage.REDEMPTIONS)


@transaction.atomic
def apply_record_exception(*, record_exception: RecordException, user, now: datetime,
                           manager_confirmed: bool = False, note: str = "",
                           ip_address: str | None = None) -> RecordException:
    """Spend a treatment held for review, through the ledger, once per appointment. Raises a
    LedgerError (nothing changes, the exception stays open) when it may not or cannot be spent."""
    row = _lock(record_exception)
    if row.status != RecordExceptionStatus.OPEN:
        return row
    if row.kind != RecordExceptionKind.REVIEW:
        raise NotApplicable("Only a treatment held for review can be applied; resolve this one with a note.")
    if row.member is None or row.service is None:
        raise NotApplicable("The member or the service of this treatment is unknown; resolve it with a note.")
    if needs_manager(row.practice, member=row.member) and not (manager_confirmed and user.has_perm(MANAGER_PERMISSION)):
        raise NotAllowed("The record's treatments are not spent automatically at this practice yet: "
                         "a manager may apply it after confirming.")
    membership = ledger.current_membership(member=row.member)
    if membership is None:
        raise MembershipNotRedeemable("The member has no membership to redeem from.")
    spend_for_appointment(practice=row.practice, membership=membership, service=row.service,
                          appointment_id=row.appointment_ref, quantity=row.quantity,
                          actor=services.Actor.staff(user, ip_address=ip_address), now=now,
                          reason="Treatment reported by the record, applied by staff")
    done = f"Applied: redeemed {row.service.format_quantity(row.quantity)} {row.service.name}."
    return _close(row, status=RecordExceptionStatus.APPLIED, note=" ".join([done, note.strip()]).strip(),
                  user=user, now=now, action="record_exception_apply", ip_address=ip_address)


@transaction.atomic
def dismiss_record_exception(*, record_exception: RecordException, user, now: datetime,
                             note: str = "", ip_address: str | None = None) -> RecordException:
    """Close a treatment held for review without spending it (e.g. not a member visit)."""
    row = _lock(record_exception)
    if row.status != RecordExceptionStatus.OPEN:
        return row
    if row.kind != RecordExceptionKind.REVIEW:
        raise NotApplicable("Only a treatment held for review can be dismissed; resolve this one with a note.")
    return _close(row, status=RecordExceptionStatus.DISMISSED, note=note.strip() or "Dismissed: not spent.",
                  user=user, now=now, action="record_exception_dismiss", ip_address=ip_address)
