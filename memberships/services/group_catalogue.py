"""The group's catalogue, defined once: a tier of one practice, shared with its group, is copied into
every other practice of the organization as that practice's own versioned tier (its own services,
its own processor plan, members and reports as for any tier of it). Sharing again after a new version
of the group tier makes a new version where a practice's copy differs, and nothing where it is in step:
idempotent by content, whatever the number of clicks. Prices per location stay each location's own
(`TierLocationPrice` on each practice's copy)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.db import transaction

from memberships.errors import InvalidTier, NotAllowed
from memberships.models import Practice, Service, ServiceKind, Tier, TierBenefit
from memberships.models.catalogue import clinical_terms_in

from .common import Actor, write_audit
from .locations import is_group_manager

CREATED, IN_STEP, REFUSED = "created", "in_step", "refused"
_COPIED = ("name", "processor_name", "price_cents", "currency", "interval", "rank", "offered_online", "redeemable_at")
_BENEFIT = ("quantity_per_cycle", "rollover", "rollover_cap", "expire_after_cycles")


@dataclass(frozen=True)
class Shared:
    """What sharing did at one practice of the group."""

    practice: Practice
    status: str                     # created | in_step | refused
    tier: Tier | None               # the practice's current version of the tier
    reason: str = ""


def share_tier_with_group(*, tier: Tier, actor: Actor, now: datetime) -> list[Shared]:
    """Mark `tier` (the newest version of its code) as the group's and bring every other practice of the
    organization in step with it. A practice whose own treatment names the processor name would put on
    card statements is refused, changing nothing there. One audit row."""
    with transaction.atomic():
        source = Tier.objects.select_for_update().select_related("practice").get(pk=tier.pk)
        if source.practice.organization_id is None:
            raise NotAllowed("This practice is not part of a group: there is no one to share the tier with.")
        _require_group_manager(actor, organization_id=source.practice.organization_id)
        newest = Tier.objects.filter(practice_id=source.practice_id, code=source.code).order_by("-version").first()
        if newest.pk != source.pk or not source.active:
            raise InvalidTier("Share the newest, active version of the tier.")
        Tier.objects.filter(pk=source.pk).update(shared_with_group=True)
        benefits = list(TierBenefit.objects.filter(tier=source).select_related("service"))
        siblings = (Practice.objects.select_for_update().filter(organization_id=source.practice.organization_id)
                    .exclude(pk=source.practice_id).order_by("pk"))
        done = [_bring_in_step(practice, source, benefits) for practice in siblings]
        write_audit(actor=actor, action="tier_shared_with_group", obj=source, now=now,
                    detail={"tier": source.pk, **{status: [d.practice.pk for d in done if d.status == status]
                                                 for status in (CREATED, IN_STEP, REFUSED)}})
    return done


def _require_group_manager(actor: Actor, *, organization_id: int) -> None:
    """Only a manager of the whole group (or a superuser) changes its practices' catalogues."""
    user = actor.user
    if user is None or user.is_superuser:
        return
    profile = getattr(user, "staff_profile", None)
    if not (is_group_manager(user, profile) and profile.organization_id == organization_id):
        raise NotAllowed("Only a group manager of this group may share a tier with its practices.")


def _bring_in_step(practice: Practice, source: Tier, benefits: list[TierBenefit]) -> Shared:
    current = Tier.objects.filter(practice=practice, code=source.code).order_by("-version").first()
    services = {s.code: s for s in Service.objects.filter(practice=practice,
                                                          code__in=[b.service.code for b in benefits])}
    if current is not None and _same(current, source, benefits, services):
        return Shared(practice=practice, status=IN_STEP, tier=current)
    found = clinical_terms_in(source.processor_name, practice_id=practice.pk)
    if found:
        return Shared(practice=practice, status=REFUSED, tier=current, reason=(
            f"its processor name would put {', '.join(found)} on card statements at {practice.name}"))
    # A benefit counts units of a treatment or cents of credit: the practice's own service of that code
    # must count the same, or its copy would sell something else ($50 of credit as 5,000 treatments).
    clashing = [services[b.service.code] for b in benefits
                if b.service.code in services and services[b.service.code].kind != b.service.kind]
    if clashing:
        return Shared(practice=practice, status=REFUSED, tier=current, reason=(
            f"at {practice.name}, {', '.join(s.name for s in clashing)} counts "
            f"{'units' if clashing[0].kind == ServiceKind.TREATMENT else 'dollars'} where the group's tier counts "
            f"{'dollars' if clashing[0].kind == ServiceKind.TREATMENT else 'units'}"))
    for benefit in benefits:
        if benefit.service.code not in services:
            s = benefit.service
            services[s.code] = Service.objects.create(practice=practice, name=s.name, code=s.code, kind=s.kind,
                                                      unit_value_cents=s.unit_value_cents)
    copy = Tier.objects.create(practice=practice, code=source.code, version=current.version + 1 if current else 1,
                               active=True, shared_with_group=True, copied_from=source,
                               **{name: getattr(source, name) for name in _COPIED})
    TierBenefit.objects.bulk_create([
        TierBenefit(tier=copy, service=services[b.service.code], **{name: getattr(b, name) for name in _BENEFIT})
        for b in benefits])
    Tier.objects.filter(practice=practice, code=source.code).exclude(pk=copy.pk).update(active=False)
    return Shared(practice=practice, status=CREATED, tier=copy)


def _same(current: Tier, source: Tier, benefits: list[TierBenefit], services: dict[str, Service]) -> bool:
    """The practice's current version already sells what the group tier sells (an earlier copy of it,
    or the same price and benefits made by hand)."""
    if current.copied_from_id == source.pk:
        return True
    if not current.active or any(getattr(current, name) != getattr(source, name) for name in _COPIED):
        return False
    theirs = {(b.service_id, *(getattr(b, name) for name in _BENEFIT))
              for b in TierBenefit.objects.filter(tier=current)}
    ours = {(services[b.service.code].pk if b.service.code in services else None,
             *(getattr(b, name) for name in _BENEFIT)) for b in benefits}
    return theirs == ours
