"""The manager's configuration (practices, services, tiers, benefits, members). Ledger entries,
events and the audit log are read-only; corrections go through actions that call the services."""

from __future__ import annotations

import uuid

from django import forms
from django.contrib import admin, messages
from django.shortcuts import redirect, render
from django.utils import timezone
from django.utils.html import format_html, format_html_join

from . import services
from .display import format_phone
from .errors import LedgerError
from .validators import time_zone_names
from .models import (
    CreditLot,
    EntitlementBalance,
    Event,
    LedgerEntry,
    Location,
    Member,
    Membership,
    Organization,
    Practice,
    Reservation,
    Service,
    StaffProfile,
    Tier,
    TierBenefit,
)
from .admin_audit import AuditedMemberPages
from .admin_member_form import MemberAdminForm
from .admin_catalogue import LockedLocationPriceInline, TierLocationPriceInline, share_with_group
from .services.locations import group_practice_ids
from .views.common import client_ip


def _user_practice_id(request) -> int | None:
    return getattr(getattr(request.user, "staff_profile", None), "practice_id", None)


def _user_practice_ids(request) -> list[int]:
    """The practices the user manages in the admin: a group manager's, every practice of the group;
    anyone else's, their practice (none without a profile)."""
    group = group_practice_ids(request.user)
    if group:
        return group
    practice_id = _user_practice_id(request)
    return [practice_id] if practice_id is not None else []


class PracticeChoices:
    """Form choices limited to the user's practice — a group manager's, their group's practices (a
    superuser chooses among all): for admins and their inlines alike."""

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if not request.user.is_superuser:
            practice_ids = _user_practice_ids(request)
            related = db_field.related_model
            if related is Practice:
                kwargs["queryset"] = Practice.objects.filter(pk__in=practice_ids)
            elif related in (Location, Service, Tier, Member):
                kwargs["queryset"] = related.objects.filter(practice_id__in=practice_ids)
            elif related is Organization:
                kwargs["queryset"] = Organization.objects.none()
        return super().formfield_for_foreignkey(db_field, request, **kwargs)


class PracticeScopedAdmin(PracticeChoices, admin.ModelAdmin):
    """A manager sees and edits only their own practice's rows — a group manager, every practice's of
    the group (a superuser sees all) — and can only pick those practices in forms."""

    practice_path = "practice"

    def get_list_filter(self, request):
        filters = super().get_list_filter(request)
        if request.user.is_superuser:
            return filters
        return [f for f in filters if f != "practice"]  # one practice: the filter would list others'

    def get_queryset(self, request):
        queryset = super().get_queryset(request)
        if request.user.is_superuser:
            return queryset
        practice_ids = _user_practice_ids(request)
        if not practice_ids:
            return queryset.none()
        return queryset.filter(**{f"{self.practice_path}__in": practice_ids})


class ReadOnlyAdmin(PracticeScopedAdmin):
    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class TimeZoneInput(forms.TextInput):
    """A text box offering the IANA zone names as suggestions (a datalist): the stored value stays
    visible as it is, and the model's validator refuses a name that is not a zone."""

    def __init__(self, attrs=None):
        super().__init__({"list": "iana-time-zones", "size": 32, **(attrs or {})})

    def render(self, name, value, attrs=None, renderer=None):
        options = format_html_join("", '<option value="{}">', ((zone,) for zone in sorted(time_zone_names())))
        return super().render(name, value, attrs, renderer) + format_html(
            '<datalist id="iana-time-zones">{}</datalist>', options)


class TimeZoneFieldAdmin(PracticeScopedAdmin):
    def formfield_for_dbfield(self, db_field, request, **kwargs):
        if db_field.name == "timezone":
            kwargs["widget"] = TimeZoneInput
        return super().formfield_for_dbfield(db_field, request, **kwargs)


@admin.register(Practice)
class PracticeAdmin(TimeZoneFieldAdmin):
    practice_path = "pk"
    list_display = ["name", "slug", "automation_stage", "record_adapter", "timezone"]
    prepopulated_fields = {"slug": ["name"]}

    def get_readonly_fields(self, request, obj=None):
        # The stage moves one step at a time, confirmed and audited, on the rollout page; which group
        # a practice belongs to decides who manages it: a superuser's choice.
        return [] if request.user.is_superuser else ["automation_stage", "organization"]


@admin.register(Location)
class LocationAdmin(TimeZoneFieldAdmin):
    list_display = ["name", "practice", "timezone"]


class StaffProfileForm(forms.ModelForm):
    """Where a staff member works must be a clinic of their practice, and a group manager's practice
    one of their group's."""

    def clean(self):
        cleaned = super().clean()
        practice, location, organization = (cleaned.get("practice"), cleaned.get("location"),
                                            cleaned.get("organization"))
        if practice is not None and location is not None and location.practice_id != practice.pk:
            self.add_error("location", f"{location} is a location of {location.practice}, not of {practice}.")
        if practice is not None and organization is not None and practice.organization_id != organization.pk:
            self.add_error("organization", f"{practice} is not a practice of {organization}.")
        return cleaned


@admin.register(StaffProfile)
class StaffProfileAdmin(admin.ModelAdmin):
    """Which practice a user works for decides everything they can see: superusers only."""

    form = StaffProfileForm

    def has_module_permission(self, request):
        return request.user.is_superuser

    def has_view_permission(self, request, obj=None):
        return request.user.is_superuser

    def has_add_permission(self, request):
        return request.user.is_superuser

    def has_change_permission(self, request, obj=None):
        return request.user.is_superuser

    def has_delete_permission(self, request, obj=None):
        return request.user.is_superuser


@admin.register(Service)
class ServiceAdmin(PracticeScopedAdmin):
    list_display = ["name", "code", "kind", "unit_value_cents", "active", "practice"]
    list_filter = ["practice", "kind", "active"]


class TierBenefitInline(PracticeChoices, admin.TabularInline):
    model = TierBenefit
    extra = 0


class LockedBenefitInline(TierBenefitInline):
    readonly_fields = ["service", "quantity_per_cycle", "rollover", "rollover_cap", "expire_after_cycles"]
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(Tier)
class TierAdmin(PracticeScopedAdmin):
    list_display = ["name", "code", "version", "price_cents", "currency", "processor_name", "active", "practice"]
    list_filter = ["practice", "active"]
    inlines = [TierBenefitInline, TierLocationPriceInline]
    actions = ["make_new_version", share_with_group]

    def get_readonly_fields(self, request, obj=None):
        # A tier that members hold is never edited in place: price and benefits change through a
        # new version, so nobody's membership changes under them.
        if obj is not None and obj.memberships.exists():
            return ["practice", "code", "version", "price_cents", "currency", "interval", "processor_price_id"]
        return ["version"] if obj is not None else []

    def get_inline_instances(self, request, obj=None):
        if obj is not None and obj.memberships.exists():
            return [LockedBenefitInline(self.model, self.admin_site),
                    LockedLocationPriceInline(self.model, self.admin_site)]
        return super().get_inline_instances(request, obj)

    @admin.action(description="Create a new version (copy price and benefits; retire this one from sale)")
    def make_new_version(self, request, queryset):
        for tier in queryset:
            new = services.new_tier_version(tier=tier, now=timezone.now())
            self.message_user(request, f"{new.name} version {new.version} created; edit its price and benefits.")


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 0
    fields = ["tier", "status", "started_at", "current_period_end", "processor_subscription_id"]
    readonly_fields = fields
    can_delete = False
    show_change_link = True

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(Member)
class MemberAdmin(AuditedMemberPages, PracticeScopedAdmin):
    form = MemberAdminForm
    list_display = ["member_number", "first_name", "last_name", "email", "phone_number", "sms_consent", "practice"]
    search_fields = ["member_number", "first_name", "last_name", "email", "phone"]
    list_filter = ["practice", "sms_consent"]
    # Set by the processor path only: an edited id would send another customer's webhooks here.
    readonly_fields = ["processor_customer_id"]
    inlines = [MembershipInline]

    def member_of(self, obj) -> int:
        return obj.pk

    @admin.display(description="Phone", ordering="phone")
    def phone_number(self, obj):
        return format_html('<span style="white-space: nowrap">{}</span>', format_phone(obj.phone))


class BalanceInline(admin.TabularInline):
    model = EntitlementBalance
    extra = 0
    fields = ["service", "balance", "reserved", "frozen_at"]
    readonly_fields = fields
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(Membership)
class MembershipAdmin(AuditedMemberPages, PracticeScopedAdmin):
    """Read-only: a membership changes only through the services (staff pages), which record the
    Event and tell the processor and the record."""

    practice_path = "member__practice"
    list_display = ["member", "tier", "status", "current_period_end", "processor_subscription_id"]
    list_filter = ["status", ("tier", admin.RelatedOnlyFieldListFilter)]  # the tiers listed, not every practice's
    search_fields = ["member__member_number", "member__last_name", "processor_subscription_id"]
    inlines = [BalanceInline]

    def member_of(self, obj) -> int:
        return obj.member_id

    def get_readonly_fields(self, request, obj=None):
        return [field.name for field in self.model._meta.fields]

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class AdjustForm(forms.Form):
    service = forms.ModelChoiceField(queryset=Service.objects.all())
    quantity = forms.IntegerField(help_text="Units or cents; negative to take away.")
    reason = forms.CharField(max_length=300)


class ReverseForm(forms.Form):
    reason = forms.CharField(max_length=300)
    dispute = forms.BooleanField(required=False, help_text="The member disputed this entry.")


@admin.register(LedgerEntry)
class LedgerEntryAdmin(AuditedMemberPages, ReadOnlyAdmin):
    practice_path = "membership__member__practice"
    list_display = ["created_at", "membership", "service", "kind", "quantity", "balance_after", "actor_label", "reason"]
    list_filter = ["kind", "source", "actor_type"]
    search_fields = ["idempotency_key", "membership__member__member_number"]
    actions = ["reverse_selected", "adjust_membership_balance"]

    def member_of(self, obj) -> int:
        return obj.membership.member_id

    @admin.action(description="Reverse the selected entries (with a reason)")
    def reverse_selected(self, request, queryset):
        if "apply" in request.POST:
            form = ReverseForm(request.POST)
            if form.is_valid():
                done = 0
                for entry in queryset:
                    try:
                        services.reverse_entry(
                            entry=entry, actor=services.Actor.staff(request.user, ip_address=client_ip(request)),
                            reason=form.cleaned_data["reason"], dispute=form.cleaned_data["dispute"],
                            idempotency_key=f"admin-reverse:{entry.pk}", now=timezone.now(),
                            audit_action="admin_reverse")
                        done += 1
                    except LedgerError as exc:
                        self.message_user(request, f"Entry {entry.pk}: {exc.message}", messages.ERROR)
                self.message_user(request, f"Reversed {done} entries.")
                return redirect(request.get_full_path())
        else:
            form = ReverseForm()
        return render(request, "admin/ledger_action.html", {
            "title": "Reverse entries", "form": form, "queryset": queryset, "action": "reverse_selected",
        })

    @admin.action(description="Adjust the balance of the selected entries' membership")
    def adjust_membership_balance(self, request, queryset):
        memberships = {entry.membership for entry in queryset}
        if len(memberships) != 1:
            self.message_user(request, "Select entries of exactly one membership.", messages.ERROR)
            return None
        membership = memberships.pop()
        if "apply" in request.POST:
            form = AdjustForm(request.POST)
            if form.is_valid():
                try:
                    services.adjust_balance(
                        membership=membership, service=form.cleaned_data["service"],
                        quantity=form.cleaned_data["quantity"], reason=form.cleaned_data["reason"],
                        actor=services.Actor.staff(request.user, ip_address=client_ip(request)),
                        idempotency_key=f"admin-adjust:{uuid.uuid4()}", now=timezone.now(), audit_action="admin_adjust")
                    self.message_user(request, "Balance adjusted.")
                except LedgerError as exc:
                    self.message_user(request, exc.message, messages.ERROR)
                return redirect(request.get_full_path())
        else:
            form = AdjustForm()
        form.fields["service"].queryset = Service.objects.filter(practice_id=membership.member.practice_id)
        return render(request, "admin/ledger_action.html", {
            "title": f"Adjust balance of {membership}", "form": form, "queryset": queryset,
            "action": "adjust_membership_balance",
        })


@admin.register(Event)
class EventAdmin(AuditedMemberPages, ReadOnlyAdmin):
    list_display = ["created_at", "kind", "member", "summary", "actor_type"]
    list_filter = ["kind", "actor_type"]
    search_fields = ["member__member_number"]

    def member_of(self, obj) -> int | None:
        return obj.member_id


@admin.register(CreditLot)
class CreditLotAdmin(AuditedMemberPages, ReadOnlyAdmin):
    practice_path = "membership__member__practice"
    list_display = ["membership", "service", "source", "cycle_number", "granted", "remaining", "expires_at_cycle"]

    def member_of(self, obj) -> int | None:
        return obj.membership.member_id if obj.membership_id else None


@admin.register(Reservation)
class ReservationAdmin(AuditedMemberPages, ReadOnlyAdmin):
    practice_path = "membership__member__practice"
    list_display = ["membership", "service", "quantity", "status", "external_ref", "created_at"]

    def member_of(self, obj) -> int | None:
        return obj.membership.member_id if obj.membership_id else None
