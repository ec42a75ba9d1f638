"""Admin for the record side: exceptions to resolve (with a note), and the service-code mapping."""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.shortcuts import redirect, render
from django.utils import timezone

from memberships.admin import PracticeScopedAdmin, ReadOnlyAdmin

from integrations.models import (
    RecordAppointment,
    RecordException,
    RecordExceptionStatus,
    RecordObject,
    RecordServiceMap,
)

from .exceptions import resolve_record_exception


class ResolveForm(forms.Form):
    note = forms.CharField(widget=forms.Textarea, max_length=2000, help_text="What was done.")


@admin.register(RecordException)
class RecordExceptionAdmin(PracticeScopedAdmin):
    list_display = ["created_at", "practice", "kind", "event_type", "appointment_ref", "member", "service",
                    "status"]
    list_filter = ["status", "kind", "practice"]
    search_fields = ["appointment_ref", "patient_ref", "member__member_number"]
    readonly_fields = [f.name for f in RecordException._meta.fields]
    actions = ["resolve_selected"]

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
class RecordObjectAdmin(PracticeScopedAdmin):
    list_display = ["practice", "member", "adapter", "kind", "external_id", "updated_at"]
    readonly_fields = ["practice", "member", "adapter", "kind", "external_id", "state", "updated_at"]


@admin.register(RecordAppointment)
class RecordAppointmentAdmin(ReadOnlyAdmin):
    """What the ledger heard about each appointment (cancelled, treatment reported): read-only."""

    list_display = ["appointment_ref", "practice", "cancelled_at", "cancel_reason", "completed_at", "first_seen_at"]
    list_filter = ["practice"]
    search_fields = ["appointment_ref"]
