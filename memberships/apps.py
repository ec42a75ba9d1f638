from django.apps import AppConfig
from django.db.models.signals import post_migrate


def ensure_schedules(**kwargs) -> None:
    from django_q.models import Schedule

    Schedule.objects.update_or_create(
        name="ledger: resume ended pauses, expire frozen credit",
        defaults={"func": "memberships.tasks.ledger_housekeeping", "schedule_type": Schedule.HOURLY, "repeats": -1},
    )


class MembershipsConfig(AppConfig):
    name = "memberships"
    verbose_name = "Membership ledger"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from .roles import ensure_roles

        # After every app's migrate, not only ours: billing's and integrations' permissions are
        # created by their own post_migrate, later than ours, and the manager role views them too.
        post_migrate.connect(ensure_roles, dispatch_uid="memberships.ensure_roles")
        post_migrate.connect(ensure_schedules, sender=self, dispatch_uid="memberships.ensure_schedules")
