"""Django's admin app, with the two-factor admin site as its default site (`memberships.admin_site`).
After the usual autodiscovery it registers the API tokens' admin (`memberships.admin_tokens`)."""

from django.contrib.admin.apps import AdminConfig


class StaffAdminConfig(AdminConfig):
    default_site = "memberships.admin_site.StaffAdminSite"

    def ready(self):
        super().ready()
        from memberships import admin_tokens  # noqa: F401  (registers ApiTokenAdmin)
        from memberships import admin_groups  # noqa: F401  (registers OrganizationAdmin)
        from memberships import admin_auditlog  # noqa: F401  (registers AuditLogAdmin)
