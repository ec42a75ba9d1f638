"""The practice's catalogue: tiers are versioned, so a price or benefit change never rewrites what
existing members signed up for."""

from __future__ import annotations

from datetime import datetime

from django.db import transaction

from memberships.errors import InvalidTier
from memberships.models import Tier, TierBenefit, TierLocationPrice


@transaction.atomic
def new_tier_version(*, tier: Tier, now: datetime, price_cents: int | None = None,
                     name: str | None = None) -> Tier:
    """Copy a tier (and its benefits) as version n+1 — optionally at a new price — and retire the
    old version from sale. Existing memberships stay on their version until moved with
    `change_tier`; new enrolments take the new one."""
    if price_cents is not None and (isinstance(price_cents, bool) or not isinstance(price_cents, int)
                                    or price_cents < 0):
        raise InvalidTier("The price must be a whole number of cents, zero or more.")
    # Always build on the newest version, so an older one selected by mistake cannot undo changes.
    latest = Tier.objects.select_for_update().filter(practice_id=tier.practice_id, code=tier.code).order_by(
        "-version").first()
    tier = latest
    new = Tier.objects.create(
        practice_id=tier.practice_id, code=tier.code, version=latest.version + 1, name=name or tier.name,
        processor_name=tier.processor_name, price_cents=tier.price_cents if price_cents is None else price_cents,
        currency=tier.currency, interval=tier.interval, rank=tier.rank, active=True,
        offered_online=tier.offered_online, redeemable_at=tier.redeemable_at, shared_with_group=tier.shared_with_group,
    )
    TierBenefit.objects.bulk_create([
        TierBenefit(tier=new, service_id=b.service_id, quantity_per_cycle=b.quantity_per_cycle, rollover=b.rollover,
                    rollover_cap=b.rollover_cap, expire_after_cycles=b.expire_after_cycles)
        for b in TierBenefit.objects.filter(tier=tier)
    ])
    # The locations' own prices belong to the version: the new one starts with the same (a new plan
    # at the processor is made for it when first used).
    TierLocationPrice.objects.bulk_create([
        TierLocationPrice(tier=new, location_id=p.location_id, price_cents=p.price_cents)
        for p in TierLocationPrice.objects.filter(tier=tier)
    ])
    Tier.objects.filter(practice_id=tier.practice_id, code=tier.code).exclude(pk=new.pk).update(active=False)
    return new
