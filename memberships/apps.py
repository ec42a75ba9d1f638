from django.apps import AppConfig
from django.db.models.signals import post_migrate


class MembershipsConfig(AppConfig):
    name = "memberships"
    verbose_name = "Membership ledger"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from .roles import ensure_roles

        post_migrate.connect(ensure_roles, sender=self, dispatch_uid="memberships.ensure_roles")
