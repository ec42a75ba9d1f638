"""The three staff roles as Django groups with their permissions. Kept in step after every migrate."""

from __future__ import annotations

FRONT_DESK = "Front desk"
CLINICIAN = "Clinician"
MANAGER = "Manager"

ROLE_PERMISSIONS = {
    FRONT_DESK: ["view_chart", "redeem_entitlement", "manage_membership"],
    CLINICIAN: ["view_chart", "redeem_entitlement"],
    MANAGER: ["view_chart", "redeem_entitlement", "manage_membership", "adjust_balance", "view_dashboard"],
}


def ensure_roles(**kwargs) -> None:
    from django.contrib.auth.models import Group, Permission

    for role, codenames in ROLE_PERMISSIONS.items():
        group, _ = Group.objects.get_or_create(name=role)
        perms = Permission.objects.filter(content_type__app_label="memberships", codename__in=codenames)
        group.permissions.set(perms)
