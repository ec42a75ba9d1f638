"""The audit log in the admin (read-only): a manager sees every row about their practice's members,
whoever looked — a sibling practice's desk, the member on her own page — and the rows of their own
staff that name no member (a stage moved, a token issued). A row follows its member, not where the
person who looked works now. Its rows name members, so reading them is audited too."""

from __future__ import annotations

from django.contrib import admin

from .admin import ReadOnlyAdmin, _user_practice_ids
from .admin_audit import AuditedMemberPages
from .models import AuditLog


@admin.register(AuditLog)
class AuditLogAdmin(AuditedMemberPages, ReadOnlyAdmin):
    list_display = ["created_at", "user", "action", "object_type", "object_id", "member"]
    list_filter = ["action"]

    def get_queryset(self, request):
        rows = admin.ModelAdmin.get_queryset(self, request)
        if request.user.is_superuser:
            return rows
        ids = _user_practice_ids(request)
        return rows.filter(member__practice__in=ids) | rows.filter(member=None, user__staff_profile__practice__in=ids)
