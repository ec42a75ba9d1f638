"""The admin of the notices: each practice's notice days (edited through the door, audited) and the
notices sent, read-only (they name members: every page that lists them is audited)."""

from __future__ import annotations

from django.contrib import admin
from django.utils import timezone

from billing.models import MemberNotice, NoticeSettings
from memberships.admin import PracticeScopedAdmin, ReadOnlyAdmin
from memberships.admin_audit import AuditedMemberPages
from memberships.services import Actor

from .timing import update_notice_settings


@admin.register(NoticeSettings)
class NoticeSettingsAdmin(PracticeScopedAdmin):
    list_display = ["practice", "upcoming_charge_days", "expiring_credit_days"]

    def get_readonly_fields(self, request, obj=None):
        return ["practice"] if obj is not None else []

    def has_delete_permission(self, request, obj=None):
        return False

    def save_model(self, request, obj, form, change):
        saved = update_notice_settings(practice=obj.practice, upcoming_charge_days=obj.upcoming_charge_days,
                                       expiring_credit_days=obj.expiring_credit_days,
                                       actor=Actor.staff(request.user), now=timezone.now())
        obj.pk = saved.pk
        obj._state.adding = False


@admin.register(MemberNotice)
class MemberNoticeAdmin(AuditedMemberPages, ReadOnlyAdmin):
    list_display = ["id", "member", "kind", "boundary_date", "status", "email_status", "sms_status", "note",
                    "created_at", "sent_at"]
    list_filter = ["kind", "status", "practice"]
    search_fields = ["member__member_number"]
    list_select_related = ["member"]

    def member_of(self, obj) -> int | None:
        return obj.member_id
