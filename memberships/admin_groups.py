"""Groups of practices in the admin (`Organization`): a superuser creates them and puts practices in
them (on the practice's page); a group manager sees their own group, its practices and their clinics.
A group manager's scope in the other admin pages is `memberships.admin.PracticeScopedAdmin`'s."""

from __future__ import annotations

from django.contrib import admin
from django.utils.html import format_html_join

from .admin import PracticeScopedAdmin
from .models import Organization
from .services.locations import group_practice_ids


@admin.register(Organization)
class OrganizationAdmin(PracticeScopedAdmin):
    """Groups of practices: a superuser creates them and puts practices in them (on the practice); a
    group manager sees their own group, with its practices and their clinics."""

    practice_path = "practices"
    list_display = ["name", "slug", "practice_list"]
    readonly_fields = ["practice_list"]
    prepopulated_fields = {"slug": ["name"]}

    def get_queryset(self, request):
        queryset = admin.ModelAdmin.get_queryset(self, request).prefetch_related("practices__locations")
        if request.user.is_superuser:
            return queryset
        profile = getattr(request.user, "staff_profile", None)
        return queryset.filter(pk=profile.organization_id) if group_practice_ids(request.user) else queryset.none()

    def has_module_permission(self, request):
        return request.user.is_superuser or bool(group_practice_ids(request.user))

    def has_view_permission(self, request, obj=None):
        return self.has_module_permission(request)

    def has_add_permission(self, request):
        return request.user.is_superuser

    def has_change_permission(self, request, obj=None):
        return request.user.is_superuser

    def has_delete_permission(self, request, obj=None):
        return request.user.is_superuser

    @admin.display(description="Practices and their locations")
    def practice_list(self, obj):
        return format_html_join("; ", "{} ({})", (
            (p.name, ", ".join(loc.name for loc in p.locations.all()) or "no locations")
            for p in obj.practices.all()))

