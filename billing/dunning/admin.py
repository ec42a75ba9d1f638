"""Admin: dunning policies are edited here (saving makes a new version through the service; older
versions are read-only); dunning cases are read-only, with their steps, retries, messages and the
timeline of their events."""

from __future__ import annotations

from django import forms
from django.contrib import admin
from django.utils import timezone
from django.utils.html import format_html_join

from billing.models import DunningAttempt, DunningCase, DunningMessage, DunningPolicy, DunningStep
from memberships.admin import PracticeScopedAdmin, ReadOnlyAdmin
from memberships.admin_audit import AuditedMemberPages
from memberships.services import Actor

from .policy import EDITABLE_FIELDS, policy_values, update_dunning_policy, validate_policy_values
from .selectors import case_timeline


class DunningPolicyForm(forms.ModelForm):
    class Meta:
        model = DunningPolicy
        fields = ["practice", *EDITABLE_FIELDS]

    def clean(self):
        data = super().clean()
        practice = data.get("practice") or getattr(self.instance, "practice", None)
        if practice is None:
            return data
        base = policy_values(self.instance) if self.instance.pk else policy_values(DunningPolicy())
        values = {**base, **{k: data.get(k) for k in EDITABLE_FIELDS if k in data}}
        for field, message in validate_policy_values(practice=practice, values=values).items():
            self.add_error(field if field in self.fields else None, message)
        return data


@admin.register(DunningPolicy)
class DunningPolicyAdmin(PracticeScopedAdmin):
    form = DunningPolicyForm
    list_display = ["practice", "version", "is_current", "retry_offsets_days", "exhausted_action",
                    "use_processor_retries", "created_at", "created_by"]
    list_filter = ["practice", "is_current"]
    readonly_fields = ["version", "is_current", "created_at", "created_by"]

    def get_readonly_fields(self, request, obj=None):
        if obj is not None:
            return [*self.readonly_fields, "practice"]
        return self.readonly_fields

    def has_change_permission(self, request, obj=None):
        if obj is not None and not obj.is_current:
            return False
        return super().has_change_permission(request, obj)

    def has_delete_permission(self, request, obj=None):
        return False

    def save_model(self, request, obj, form, change):
        practice = obj.practice
        changes = {k: form.cleaned_data[k] for k in EDITABLE_FIELDS if k in form.cleaned_data}
        new = update_dunning_policy(practice=practice, changes=changes, actor=Actor.staff(request.user),
                                    now=timezone.now())
        obj.pk, obj.version = new.pk, new.version


class ReadOnlyInline(admin.TabularInline):
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


class StepInline(ReadOnlyInline):
    model = DunningStep
    fields = ["key", "kind", "due_at", "deferred_from", "status", "done_at", "note"]
    readonly_fields = fields


class AttemptInline(ReadOnlyInline):
    model = DunningAttempt
    fields = ["number", "status", "decline_code", "requested_at", "finished_at", "idempotency_key"]
    readonly_fields = fields


class MessageInline(ReadOnlyInline):
    model = DunningMessage
    fields = ["channel", "reason", "status", "error_code", "created_at", "sent_at", "provider_id"]
    readonly_fields = fields


@admin.register(DunningCase)
class DunningCaseAdmin(AuditedMemberPages, ReadOnlyAdmin):
    list_display = ["id", "member", "invoice_ref", "amount_cents", "currency", "decline_code", "hard", "status",
                    "opened_at", "next_action_at"]
    list_filter = ["status", "hard", "practice"]
    search_fields = ["invoice_ref", "member__member_number", "member__last_name"]
    inlines = [StepInline, AttemptInline, MessageInline]
    readonly_fields = ["timeline"]

    def member_of(self, obj) -> int | None:
        return obj.member_id

    def get_readonly_fields(self, request, obj=None):
        return [f.name for f in DunningCase._meta.fields] + ["timeline"]

    @admin.display(description="Timeline")
    def timeline(self, obj):
        events = case_timeline(obj)
        return format_html_join("", "<div>{} — {}</div>",
                                ((e.created_at.strftime("%Y-%m-%d %H:%M"), e.summary) for e in events)) or "—"
