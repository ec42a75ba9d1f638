"""A member's request from their own page — pause until a date, or cancel at the end of the paid
period — and its decision by staff. The request is only a request: approving it calls the same doors
as the staff pages (`pause_membership`, `cancel_membership`) with the staff member as the actor, once
however many people press "Approve" at the same moment (the request row is locked and its status
moved in one transaction with the door's change). Under the practice's `member_requests_self_serve`
a pause within `member_pause_max_days` and a cancellation go through at once, with the member as
the actor; anything else waits in the queue."""

from __future__ import annotations

from datetime import date, datetime

from django.db import IntegrityError, transaction

from memberships.errors import IllegalTransition, LedgerError, ReasonRequired
from memberships.models import (
    AutomationStage,
    EventKind,
    MemberRequest,
    MemberRequestKind,
    MemberRequestReason,
    MemberRequestStatus,
    Membership,
    MembershipStatus,
)

from .common import Actor, record_event, write_audit
from .lifecycle import cancel_membership, pause_membership
from .stages import stage_at_least_for

NOTE_MAX = 500


class InvalidRequest(LedgerError):
    code = "invalid_request"


class RequestAlreadyDecided(IllegalTransition):
    code = "request_already_decided"

    def default_message(self) -> str:
        return "Someone already decided this request; nothing was done twice."


def _check(*, membership: Membership, kind: str, reason: str, note: str, pause_until: date | None,
           today: date) -> None:
    if kind not in MemberRequestKind.values:
        raise InvalidRequest("Choose a pause or a cancellation.")
    if reason not in MemberRequestReason.values:
        raise InvalidRequest("Choose a reason from the list.")
    if len(note) > NOTE_MAX:
        raise InvalidRequest(f"Please keep the note under {NOTE_MAX} characters.")
    if kind == MemberRequestKind.PAUSE:
        if pause_until is None or pause_until <= today:
            raise InvalidRequest("Choose a date after today for the pause to end.")
        if membership.status != MembershipStatus.ACTIVE:
            raise InvalidRequest("Only an active membership can be paused.")
    elif membership.status == MembershipStatus.CANCELLED:
        raise InvalidRequest("The membership is already cancelled.")


def _applies_at_once(*, membership: Membership, kind: str, pause_until: date | None, today: date) -> bool:
    """Self-serve, within its limits — and only where the ledger changes the subscription at the
    processor itself (`tier_sync` on, at the member's stage): below it the card would go on being
    charged after a 'Done', so the request waits for staff, who stop the billing by hand."""
    practice = membership.member.practice
    if not practice.member_requests_self_serve:
        return False
    if not stage_at_least_for(membership.member, AutomationStage.TIER_SYNC):
        return False
    if kind == MemberRequestKind.PAUSE:
        return (pause_until - today).days <= practice.member_pause_max_days
    return True


def _door(request: MemberRequest, *, actor: Actor, now: datetime) -> Membership:
    """The staff pages' own door for the request, keyed by the request (a second call replays)."""
    key = f"member-request:{request.pk}"
    words = f"Member request: {request.get_reason_display()}"
    if request.kind == MemberRequestKind.PAUSE:
        return pause_membership(membership=request.membership, until=request.pause_until, actor=actor,
                                idempotency_key=key, now=now, reason=words)
    return cancel_membership(membership=request.membership, actor=actor, idempotency_key=key, now=now, reason=words)


def file_member_request(*, membership: Membership, kind: str, reason: str, note: str = "",
                        pause_until: date | None = None, actor: Actor, idempotency_key: str,
                        now: datetime) -> MemberRequest:
    """File the member's request (a replayed form returns the first one; a second open request of
    the same kind returns the open one). Self-serve: applied at once through the door."""
    existing = MemberRequest.objects.filter(idempotency_key=idempotency_key).first()
    if existing is not None:
        return existing
    note = (note or "").strip()
    today = membership.member.practice.local_date(now)
    _check(membership=membership, kind=kind, reason=reason, note=note, pause_until=pause_until, today=today)
    if kind == MemberRequestKind.CANCEL:
        pause_until = None
    try:
        with transaction.atomic():
            request = MemberRequest.objects.create(
                practice_id=membership.member.practice_id, member=membership.member, membership=membership,
                kind=kind, reason=reason, note=note, pause_until=pause_until, idempotency_key=idempotency_key,
                created_at=now)
            at_once = _applies_at_once(membership=membership, kind=kind, pause_until=pause_until, today=today)
            if at_once:
                _door(request, actor=actor, now=now)
                request.status, request.decided_at = MemberRequestStatus.APPLIED, now
                request.save(update_fields=["status", "decided_at"])
            record_event(membership=membership, kind=EventKind.MEMBER_REQUEST,
                         summary=f"{request.get_kind_display()} requested on the member page"
                                 + (" (done at once)" if at_once else ""),
                         payload={"request_id": request.pk, "kind": kind, "reason": reason}, actor=actor, now=now)
            write_audit(actor=actor, action="member_request", obj=request, member=membership.member, now=now,
                        detail={"kind": kind, "status": request.status})
            return request
    except IntegrityError:
        again = (MemberRequest.objects.filter(idempotency_key=idempotency_key).first()
                 or MemberRequest.objects.filter(membership=membership, kind=kind,
                                                 status=MemberRequestStatus.PENDING).first())
        if again is None:
            raise
        return again


def _lock_pending(request_id: int, *, practice_id: int | None) -> MemberRequest:
    rows = MemberRequest.objects.select_for_update(of=("self",)).select_related("membership", "member")
    if practice_id is not None:
        rows = rows.filter(practice_id=practice_id)
    request = rows.filter(pk=request_id).first()
    if request is None:
        raise MemberRequest.DoesNotExist(request_id)
    if request.status != MemberRequestStatus.PENDING:
        raise RequestAlreadyDecided(request_id=request_id, status=request.status)
    return request


@transaction.atomic
def approve_member_request(*, request_id: int, practice_id: int | None, actor: Actor, now: datetime) -> MemberRequest:
    """Carry the request out through its door, once: the request row is locked, so a second
    approver waits and then finds it decided. A door that refuses (the pause date has passed, the
    membership changed meanwhile) raises and changes nothing; the request stays open."""
    request = _lock_pending(request_id, practice_id=practice_id)
    _door(request, actor=actor, now=now)
    request.status, request.decided_at, request.decided_by = MemberRequestStatus.APPROVED, now, actor.user
    request.save(update_fields=["status", "decided_at", "decided_by"])
    record_event(membership=request.membership, kind=EventKind.MEMBER_REQUEST,
                 summary=f"{request.get_kind_display()} request approved", payload={"request_id": request.pk},
                 actor=actor, now=now)
    write_audit(actor=actor, action="member_request_approve", obj=request, member=request.member, now=now)
    return request


@transaction.atomic
def decline_member_request(*, request_id: int, practice_id: int | None, reason: str, actor: Actor,
                           now: datetime) -> MemberRequest:
    """Decline with a reason the member is told on their page."""
    reason = (reason or "").strip()
    if not reason:
        raise ReasonRequired("Say why the request is declined; the member sees it on their page.")
    request = _lock_pending(request_id, practice_id=practice_id)
    request.status, request.decided_at, request.decided_by = MemberRequestStatus.DECLINED, now, actor.user
    request.decline_reason = reason[:300]
    request.save(update_fields=["status", "decided_at", "decided_by", "decline_reason"])
    record_event(membership=request.membership, kind=EventKind.MEMBER_REQUEST,
                 summary=f"{request.get_kind_display()} request declined", payload={"request_id": request.pk},
                 actor=actor, now=now)
    write_audit(actor=actor, action="member_request_decline", obj=request, member=request.member, now=now)
    return request
