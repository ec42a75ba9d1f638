"""The member's side in the admin: the practice's membership agreement, versioned. A manager writes
a new version and publishes it (the join page shows the newest published one); a version someone
accepted is read-only, so what a member signed never changes under them."""

from __future__ import annotations

from django.contrib import admin
from django.db.models import Max

from memberships.admin import PracticeScopedAdmin
from memberships.admin_audit import AuditedMemberPages
from memberships.models import AgreementAcceptance, MembershipAgreement


@admin.register(MembershipAgreement)
class MembershipAgreementAdmin(PracticeScopedAdmin):
    list_display = ["practice", "version", "published_at", "accepted_by"]
    list_filter = ["practice"]
    ordering = ["practice", "-version"]

    @admin.display(description="Accepted by")
    def accepted_by(self, obj) -> int:
        return obj.acceptances.count()

    def get_readonly_fields(self, request, obj=None):
        if obj is not None and obj.acceptances.exists():
            return ["practice", "version", "text", "published_at"]
        return ["version"] if obj is not None else []

    def get_changeform_initial_data(self, request):
        initial = super().get_changeform_initial_data(request)
        practice_id = getattr(getattr(request.user, "staff_profile", None), "practice_id", None)
        if practice_id is not None:
            newest = MembershipAgreement.objects.filter(practice_id=practice_id).aggregate(v=Max("version"))["v"]
            initial.setdefault("practice", practice_id)
            initial.setdefault("version", (newest or 0) + 1)
        return initial

    def has_delete_permission(self, request, obj=None):
        return obj is None or not obj.acceptances.exists()


@admin.register(AgreementAcceptance)
class AgreementAcceptanceAdmin(AuditedMemberPages, PracticeScopedAdmin):
    """Who accepted which version, when and from where (read only; every page that shows them is
    audited, one row per member shown)."""

    practice_path = "member__practice"
    list_display = ["member", "agreement", "accepted_at", "ip_address"]
    readonly_fields = ["member", "membership", "agreement", "accepted_at", "ip_address", "sms_consent_text",
                       "join_ref", "checkout_ref", "created_at"]

    def member_of(self, obj) -> int | None:
        return obj.member_id

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
