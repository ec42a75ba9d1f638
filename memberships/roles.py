"""The three staff roles as Django groups with their permissions. Kept in step after every migrate."""

from __future__ import annotations

FRONT_DESK = "Front desk"
CLINICIAN = "Clinician"
MANAGER = "Manager"
# A manager of every practice of one group (`StaffProfile.organization`), with the group dashboard.
GROUP_MANAGER = "Group manager"

ROLE_PERMISSIONS = {
    FRONT_DESK: ["view_chart", "redeem_entitlement", "manage_membership"],
    CLINICIAN: ["view_chart", "redeem_entitlement"],
    MANAGER: ["view_chart", "redeem_entitlement", "manage_membership", "adjust_balance", "view_dashboard"],
    GROUP_MANAGER: ["view_chart", "redeem_entitlement", "manage_membership", "adjust_balance", "view_dashboard",
                    "view_group_dashboard"],
}

# Held by the group manager alone: a practice's manager has every other "view_" permission of the admin.
GROUP_ONLY = ["view_group_dashboard"]

# What a manager configures in the admin (add/change), beside viewing everything of our apps there.
MANAGER_CONFIGURES = ["change_practice"] + [
    f"{verb}_{model}"
    for model in ("location", "service", "tier", "tierbenefit", "member", "membershipagreement")
    for verb in ("add", "change")
]
# … and of billing: the practice's notice days (the member notices).
MANAGER_CONFIGURES_BILLING = ["add_noticesettings", "change_noticesettings"]
ADMIN_APPS = ["memberships", "billing", "integrations"]


def ensure_roles(**kwargs) -> None:
    from django.contrib.auth.models import Group, Permission
    from django.db.models import Q

    for role, codenames in ROLE_PERMISSIONS.items():
        group, _ = Group.objects.get_or_create(name=role)
        wanted = Q(content_type__app_label="memberships", codename__in=codenames)
        if role in (MANAGER, GROUP_MANAGER):
            # Viewing everything in the admin, but not the group: `view_group_dashboard` is a role's own.
            wanted |= Q(content_type__app_label__in=ADMIN_APPS, codename__startswith="view_") & ~Q(
                content_type__app_label="memberships", codename__in=GROUP_ONLY)
            wanted |= Q(content_type__app_label="memberships", codename__in=MANAGER_CONFIGURES)
            wanted |= Q(content_type__app_label="billing", codename__in=MANAGER_CONFIGURES_BILLING)
        group.permissions.set(Permission.objects.filter(wanted))
