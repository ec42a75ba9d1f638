"""The admin's part of the group catalogue: a tier version's prices per location (an inline, locked
once members hold the version, like its price) and "Share with the group" (the door
`services.group_catalogue.share_tier_with_group`)."""

from __future__ import annotations

from django.contrib import admin, messages
from django.utils import timezone

from .errors import LedgerError
from .models import TierLocationPrice
from .services import Actor
from .services.group_catalogue import CREATED, IN_STEP, share_tier_with_group
from .views.common import client_ip


class TierLocationPriceInline(admin.TabularInline):
    model = TierLocationPrice
    extra = 0
    fields = ["location", "price_cents", "processor_price_id"]
    readonly_fields = ["processor_price_id"]
    verbose_name = "price at a location"
    verbose_name_plural = "prices per location (empty: the tier's price everywhere)"

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if db_field.name == "location":
            from .models import Location, Tier

            tier_id = request.resolver_match.kwargs.get("object_id") if request.resolver_match else None
            practice_id = Tier.objects.filter(pk=tier_id).values_list("practice_id", flat=True).first()
            kwargs["queryset"] = Location.objects.filter(practice_id=practice_id) if practice_id \
                else Location.objects.none()
        return super().formfield_for_foreignkey(db_field, request, **kwargs)


class LockedLocationPriceInline(TierLocationPriceInline):
    readonly_fields = ["location", "price_cents", "processor_price_id"]
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False


@admin.action(description="Share with the group (copy this version into every practice of the group)")
def share_with_group(modeladmin, request, queryset):
    actor = Actor.staff(request.user, ip_address=client_ip(request))
    for tier in queryset:
        try:
            done = share_tier_with_group(tier=tier, actor=actor, now=timezone.now())
        except LedgerError as exc:
            modeladmin.message_user(request, f"{tier.name}: {exc.message}", level=messages.ERROR)
            continue
        for item in done:
            if item.status == CREATED:
                text = f"{item.practice.name}: {item.tier.name} version {item.tier.version} created."
            elif item.status == IN_STEP:
                text = f"{item.practice.name}: already in step."
            else:
                text = f"{item.practice.name}: not shared — {item.reason}."
            modeladmin.message_user(request, f"{tier.name}: {text}",
                                    level=messages.WARNING if item.reason else messages.SUCCESS)
