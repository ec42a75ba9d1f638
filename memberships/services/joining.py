"""Joining online, the ledger's side. The join page (portal) starts a join (`start_join`: the
minimum the enrollment will need, kept until the processor confirms or a day passes); the
processor's confirmation of the hosted payment (its `checkout.session.completed`) enrolls through
`enroll_online` — once per checkout, an existing member (same email, else same mobile, and the same
first name) matched rather than duplicated, the agreement's acceptance kept and "Joined online" on the timeline.

Nothing here talks to a processor: integrations creates the hosted page and reads its webhook."""

from __future__ import annotations

import dataclasses
import secrets
from datetime import datetime, timedelta

from django.db import transaction
from django.db.models import Q

from memberships.errors import LedgerError
from memberships.models import (
    AgreementAcceptance,
    AutomationStage,
    EventKind,
    JoinAttempt,
    Member,
    MembershipAgreement,
    Membership,
    Practice,
    Tier,
)

from .common import Actor, record_event, write_audit
from .idempotency import idempotent
from .lifecycle import enroll_member
from .members import create_member, lock_member_numbers, same_first_name

# The stage from which the join page sells memberships: the ledger then owns the subscription.
JOIN_STAGE = AutomationStage.TIER_SYNC


class JoinNotOffered(LedgerError):
    code = "join_not_offered"
    http_status = 404


class JoinNotFound(LedgerError):
    """The join this confirmation names is not (or no longer) on file: a manager must look."""

    code = "join_not_found"
    http_status = 409


def joins_open(practice: Practice) -> bool:
    """Whether the practice's join page sells memberships (below `tier_sync` it sends people to the
    front desk: the ledger does not yet own subscriptions at the processor)."""
    return practice.stage_at_least(JOIN_STAGE)


def tiers_offered_online(practice: Practice):
    return (Tier.objects.filter(practice=practice, offered_online=True, active=True)
            .prefetch_related("benefits__service").order_by("rank", "price_cents", "pk"))


def current_agreement(practice: Practice, *, now: datetime) -> MembershipAgreement | None:
    """The newest published version of the practice's membership agreement (None: none yet)."""
    return (MembershipAgreement.objects.filter(practice=practice, published_at__isnull=False,
                                               published_at__lte=now)
            .order_by("-version").first())


def recent_joins_from(ip_address: str | None, *, since: datetime) -> int:
    """How many joins were started from this address since `since` (the join page's rate limit)."""
    if not ip_address:
        return 0
    return JoinAttempt.objects.filter(ip_address=ip_address, created_at__gte=since).count()


@transaction.atomic
def start_join(*, practice: Practice, tier: Tier, agreement: MembershipAgreement, first_name: str, last_name: str,
               email: str, phone: str, sms_consent_text: str, ip_address: str | None, now: datetime) -> JoinAttempt:
    """Keep what enrolling will need until the processor confirms the payment. Refuses (changing
    nothing) a practice below the join stage, a tier not offered online, an agreement that is not
    the practice's current one."""
    if not joins_open(practice):
        raise JoinNotOffered("This practice does not take memberships online yet.")
    if tier.practice_id != practice.pk or not (tier.offered_online and tier.active):
        raise JoinNotOffered("This membership is not offered online.")
    current = current_agreement(practice, now=now)
    if current is None or current.pk != agreement.pk:
        raise JoinNotOffered("The membership agreement changed; please read the current one.")
    return JoinAttempt.objects.create(
        ref=f"jn_{secrets.token_urlsafe(18)}", practice=practice, tier=tier, agreement=agreement,
        first_name=first_name.strip(), last_name=last_name.strip(), email=email.strip().lower(), phone=phone,
        sms_consent_text=sms_consent_text, accepted_at=now, ip_address=ip_address, created_at=now)


def note_checkout(*, attempt: JoinAttempt, checkout_ref: str) -> None:
    JoinAttempt.objects.filter(pk=attempt.pk).update(checkout_ref=checkout_ref)


def purge_abandoned_joins(*, now: datetime, older_than: timedelta, keep: tuple[int, ...] = ()) -> int:
    """Delete the joins started before `now - older_than` that never completed (a completed one is
    deleted as it completes), but those in `keep` (paid, their confirmation not processed yet; or
    their hosted page still open). Returns how many."""
    deleted, _ = JoinAttempt.objects.filter(created_at__lt=now - older_than).exclude(pk__in=keep).delete()
    return deleted


def _match_member(attempt: JoinAttempt) -> Member | None:
    """The practice's member this person already is: by email, else by mobile, of the same first
    name (`same_first_name`, as the import matches); among several, the one of the same full name,
    else the oldest. A member with the email or mobile and another first name is someone else of a
    household sharing it: the person joins as a member of their own."""
    name = (attempt.first_name.lower(), attempt.last_name.lower())
    for condition in (Q(email__iexact=attempt.email), Q(phone=attempt.phone)):
        found = [m for m in Member.objects.filter(condition, practice_id=attempt.practice_id).order_by("pk")[:20]
                 if same_first_name(m.first_name, attempt.first_name)]
        if found:
            same = [m for m in found if (m.first_name.lower(), m.last_name.lower()) == name]
            return (same or found)[0]
    return None


def _member_for(attempt: JoinAttempt, *, customer_ref: str, actor: Actor, key: str, now: datetime) -> Member:
    lock_member_numbers(attempt.practice)
    member = _match_member(attempt)
    if member is None:
        member = create_member(practice=attempt.practice, first_name=attempt.first_name,
                               last_name=attempt.last_name, email=attempt.email, phone=attempt.phone,
                               sms_consent=bool(attempt.sms_consent_text), household=True, actor=actor,
                               idempotency_key=f"{key}:member", now=now)   # no one of this name has the contact
    else:
        member = Member.objects.select_for_update().get(pk=member.pk)
        changed = []
        for field in ("email", "phone"):             # fill what the desk left blank; never overwrite
            if not getattr(member, field) and getattr(attempt, field):
                setattr(member, field, getattr(attempt, field))
                changed.append(field)
        if attempt.sms_consent_text and not member.sms_consent:
            member.sms_consent, member.sms_consent_at = True, now
            changed += ["sms_consent", "sms_consent_at"]
        if changed:
            member.save(update_fields=changed)
    # The customer the join's subscription is charged on (the hosted page made it): a former member's
    # earlier one has no live subscription (an open membership refuses the enrollment, rolling this back).
    if customer_ref and member.processor_customer_id != customer_ref:
        Member.objects.filter(pk=member.pk).update(processor_customer_id=customer_ref)
        member.processor_customer_id = customer_ref
    return member


@idempotent("enroll_online")
def enroll_online(*, join_ref: str, checkout_ref: str, customer_ref: str, subscription_ref: str, actor: Actor,
                  idempotency_key: str, now: datetime) -> Membership:
    """The processor confirmed a join's payment: enroll the person (an existing member matched by
    email or mobile) in the tier, with the processor's subscription, pending until its first paid
    invoice seeds the balance; keep the agreement's acceptance and the consent text; write "Joined
    online" on the timeline and the audit row; forget the join. Once per key (derive it from the
    checkout). Raises JoinNotFound when the join is not on file (purged, or never ours), and
    IllegalTransition when the member already has an open membership — both for a manager."""
    attempt = (JoinAttempt.objects.select_for_update(of=("self",)).select_related("practice", "tier", "agreement")
               .filter(ref=join_ref).first())
    if attempt is None:
        raise JoinNotFound(f"Join {join_ref or '?'} is not on file (checkout {checkout_ref}).")
    member = _member_for(attempt, customer_ref=customer_ref, actor=actor, key=idempotency_key, now=now)
    membership = enroll_member(member=member, tier=attempt.tier, actor=actor, now=now,     # the price the page showed
                               idempotency_key=f"{idempotency_key}:enroll", processor_subscription_id=subscription_ref,
                               at_list_price=True)
    agreement = attempt.agreement
    AgreementAcceptance.objects.create(
        member=member, membership=membership, agreement=agreement, accepted_at=attempt.accepted_at,
        ip_address=attempt.ip_address, sms_consent_text=attempt.sms_consent_text, join_ref=attempt.ref,
        checkout_ref=checkout_ref, created_at=now)
    record_event(membership=membership, kind=EventKind.NOTE,
                 summary=f"Joined online; membership agreement v{agreement.version} accepted"
                         + ("; SMS consent given" if attempt.sms_consent_text else ""),
                 payload={"source": "join_online", "agreement_id": agreement.pk,
                          "agreement_version": agreement.version, "sms_consent": bool(attempt.sms_consent_text)},
                 actor=actor, now=now)
    write_audit(actor=dataclasses.replace(actor, ip_address=attempt.ip_address), action="join_online",
                obj=membership, member=member, now=now,
                detail={"agreement_version": agreement.version, "tier": attempt.tier_id})
    attempt.delete()
    return membership
