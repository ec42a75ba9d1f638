"""Admin for the record side: exceptions to resolve (with a note), the service-code mapping, and the
practice's and a location's record connection (credentials write-only, outbound URLs checked against
SSRF, webhook secrets replaced through their audited door)."""

from __future__ import annotations

import socket

from django import forms
from django.contrib import admin, messages
from django.shortcuts import redirect, render
from django.utils import timezone

from memberships.admin import LocationAdmin, PracticeAdmin, PracticeScopedAdmin, ReadOnlyAdmin
from memberships.admin_audit import AuditedMemberPages
from memberships.client_ip import client_ip
from memberships.fields import SECRET_CONFIG_KEYS
from memberships.framing import FRAME_ANCESTORS_KEY, ORIGIN
from memberships.models import Location, Practice
from memberships.services.common import Actor

from integrations.models import (
    RecordAppointment,
    RecordException,
    RecordExceptionStatus,
    RecordObject,
    RecordServiceMap,
)

from . import ADAPTERS, http
from .exceptions import resolve_record_exception
from .secrets import set_record_webhook_secret


class ResolveForm(forms.Form):
    note = forms.CharField(widget=forms.Textarea, max_length=2000, help_text="What was done.")


@admin.register(RecordException)
class RecordExceptionAdmin(AuditedMemberPages, PracticeScopedAdmin):
    list_display = ["created_at", "practice", "kind", "event_type", "appointment_ref", "member", "service",
                    "status"]
    list_filter = ["status", "kind", "practice"]
    search_fields = ["appointment_ref", "patient_ref", "member__member_number"]
    readonly_fields = [f.name for f in RecordException._meta.fields]
    actions = ["resolve_selected"]

    def member_of(self, obj) -> int | None:
        return obj.member_id

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.action(description="Resolve the selected exceptions (with a note)")
    def resolve_selected(self, request, queryset):
        if "apply" in request.POST:
            form = ResolveForm(request.POST)
            if form.is_valid():
                now = timezone.now()
                for row in queryset.filter(status=RecordExceptionStatus.OPEN):
                    resolve_record_exception(record_exception=row, user=request.user,
                                             note=form.cleaned_data["note"], now=now)
                self.message_user(request, "Resolved.", messages.SUCCESS)
                return redirect(request.get_full_path())
        else:
            form = ResolveForm()
        return render(request, "admin/ledger_action.html", {
            "title": "Resolve record exceptions", "form": form, "queryset": queryset, "action": "resolve_selected",
        })


@admin.register(RecordServiceMap)
class RecordServiceMapAdmin(PracticeScopedAdmin):
    list_display = ["practice", "external_code", "service"]
    list_filter = ["practice"]
    search_fields = ["external_code"]


@admin.register(RecordObject)
class RecordObjectAdmin(AuditedMemberPages, PracticeScopedAdmin):   # names the member: audited
    list_display = ["practice", "member", "adapter", "kind", "external_id", "updated_at"]
    readonly_fields = ["practice", "member", "adapter", "kind", "external_id", "state", "updated_at"]


@admin.register(RecordAppointment)
class RecordAppointmentAdmin(ReadOnlyAdmin):
    """What the ledger heard about each appointment (cancelled, treatment reported): read-only."""

    list_display = ["appointment_ref", "practice", "cancelled_at", "cancel_reason", "completed_at", "first_seen_at"]
    list_filter = ["practice"]
    search_fields = ["appointment_ref"]


# --- the practice's record connection: credentials write-only, URLs checked ---------------------------

MASK = "(set: leave as it is to keep)"
URL_KEYS = ("base_url", "outbound_url")


class WebhookSecretFields(forms.ModelForm):
    """The record's webhook secret, write-only: never shown, a box to replace it, a tick to remove it.
    The form only reads the wish (`secret_change`); the admin's `save_model` hands it to the door,
    which writes the audit row."""

    new_webhook_secret = forms.CharField(
        required=False, strip=True, widget=forms.PasswordInput(render_value=False), label="Replace webhook secret",
        help_text="Leave empty to keep the current secret.")
    remove_webhook_secret = forms.BooleanField(required=False, label="Remove the webhook secret")
    secret_note = "Leave empty to keep it."

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        config = dict(self.instance.record_config or {}) if self.instance.pk else {}
        if "record_config" in self.fields:
            self.initial["record_config"] = {k: MASK if k in SECRET_CONFIG_KEYS and v else v for k, v in config.items()}
        state = "set" if self.instance.pk and self.instance.record_webhook_secret else "not set"
        self.fields["new_webhook_secret"].help_text = f"Currently {state}. {self.secret_note}"

    def secret_change(self) -> str | None:
        """The secret to keep from now on ("" to remove it), or None to leave it as it is."""
        if self.cleaned_data.get("remove_webhook_secret"):
            return ""
        return self.cleaned_data.get("new_webhook_secret") or None


class RecordConnectionForm(WebhookSecretFields):
    """The practice form with the record's credentials write-only: the webhook secret is never shown
    (a box to replace it, a tick to remove it), and the credentials in `record_config` show as
    "(set…)" — keep the mark to keep the value, type a new one to replace it. Outbound URLs must be
    https and lead to a public host (`http.check_url`)."""

    class Meta:
        model = Practice
        exclude = ["record_webhook_secret"]

    def clean_new_webhook_secret(self):
        """Never a location's own: the practice's secret never verifies a location's webhooks."""
        value = self.cleaned_data.get("new_webhook_secret") or ""
        if value and self.instance.pk and any(
                own == value for own in Location.objects.filter(practice=self.instance).exclude(record_adapter="")
                .values_list("record_webhook_secret", flat=True)):
            raise forms.ValidationError("The practice's secret must differ from its locations' own.")
        return value

    def clean_record_config(self):
        value = self.cleaned_data.get("record_config") or {}
        if not isinstance(value, dict):
            raise forms.ValidationError("The record settings must be a JSON object.")
        stored = dict(self.instance.record_config or {}) if self.instance.pk else {}
        value = {k: stored.get(k, "") if v == MASK else v for k, v in value.items()}
        for key in URL_KEYS:
            if value.get(key):
                try:
                    http.check_url(value[key])
                except http.UnsafeUrl as exc:
                    raise forms.ValidationError(f"{key}: {exc}") from None
                except (socket.gaierror, UnicodeError):
                    raise forms.ValidationError(f"{key}: the host does not resolve.") from None
        return value


class WebhookSecretAdmin:
    """Saves the object, then the secret change through its door (audited, at the manager's location)."""

    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        secret = form.secret_change()
        if secret is not None:
            set_record_webhook_secret(owner=obj, secret=secret, now=timezone.now(),
                                      actor=Actor.staff(request.user, ip_address=client_ip(request)))

    @admin.display(description="Webhook secret")
    def webhook_secret_state(self, obj):
        return "set" if obj is not None and obj.record_webhook_secret else "not set"


class RecordConnectionPracticeAdmin(WebhookSecretAdmin, PracticeAdmin):
    form = RecordConnectionForm

    def get_readonly_fields(self, request, obj=None):
        return [*super().get_readonly_fields(request, obj), "webhook_secret_state"]


# A location that ran its own record before it had a secret of its own started with its practice's
# (migration 0021), which verifies its webhooks until a manager replaces it.
COPIED_STATE = "set: a copy of the practice's secret, which still verifies this location's webhooks — replace it"


def still_the_practices(location: Location) -> bool:
    return bool(location.record_webhook_secret) and location.record_webhook_secret == location.practice.record_webhook_secret


class LocationRecordForm(WebhookSecretFields):
    """A location's own record (for the members whose home it is), as the practice's: the credentials
    in `record_config` write-only, outbound URLs checked, its own webhook secret write-only; the
    adapter one of ours, or empty."""

    secret_note = ("Its own record's webhooks are verified with this secret only, never the practice's: "
                   "without one they are refused. Leave empty to keep it.")

    class Meta:
        model = Location
        exclude = ["record_webhook_secret"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.instance.pk and still_the_practices(self.instance):
            self.fields["new_webhook_secret"].help_text = f"Currently {COPIED_STATE}. {self.secret_note}"

    def clean_new_webhook_secret(self):
        """Never the practice's: it would verify this location's webhooks as the practice's own."""
        value = self.cleaned_data.get("new_webhook_secret") or ""
        if value and self.instance.pk and value == self.instance.practice.record_webhook_secret:
            raise forms.ValidationError("The location's secret must differ from the practice's.")
        return value

    def clean_record_config(self):
        """As the practice's, plus `frame_ancestors`: the https origins of this location's own record
        that may frame the compact chart panel (`memberships.framing`)."""
        value = RecordConnectionForm.clean_record_config(self)
        origins = value.get(FRAME_ANCESTORS_KEY)
        if origins is not None and not (isinstance(origins, list)
                                        and all(isinstance(o, str) and ORIGIN.fullmatch(o) for o in origins)):
            raise forms.ValidationError(f"{FRAME_ANCESTORS_KEY}: a list of https origins, "
                                        "e.g. [\"https://ehr.example.com\"].")
        return value

    def clean_record_adapter(self):
        value = (self.cleaned_data.get("record_adapter") or "").strip()
        if value and value not in ADAPTERS:
            raise forms.ValidationError(f"One of {', '.join(sorted(ADAPTERS))}, or empty for the practice's record.")
        return value


class RecordConnectionLocationAdmin(WebhookSecretAdmin, LocationAdmin):
    form = LocationRecordForm

    def get_readonly_fields(self, request, obj=None):
        # A location's stage moves on the rollout page (its door writes the audit row).
        return [*super().get_readonly_fields(request, obj), "automation_stage", "webhook_secret_state"]

    @admin.display(description="Webhook secret")
    def webhook_secret_state(self, obj):
        return COPIED_STATE if obj is not None and still_the_practices(obj) else super().webhook_secret_state(obj)


if admin.site.is_registered(Practice):
    admin.site.unregister(Practice)
admin.site.register(Practice, RecordConnectionPracticeAdmin)
if admin.site.is_registered(Location):
    admin.site.unregister(Location)
admin.site.register(Location, RecordConnectionLocationAdmin)
