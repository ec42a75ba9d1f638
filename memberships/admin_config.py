"""Django's admin app, with the two-factor admin site as its default site (`memberships.admin_site`)."""

from django.contrib.admin.apps import AdminConfig


class StaffAdminConfig(AdminConfig):
    default_site = "memberships.admin_site.StaffAdminSite"
