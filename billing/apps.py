from django.apps import AppConfig
from django.db.models.signals import post_migrate


def ensure_schedules(**kwargs) -> None:
    """The nightly reconciliation (catch-up is off for the whole cluster: a missed night is not
    replayed, the next run compares what is there then)."""
    from datetime import timedelta

    from django.conf import settings
    from django.utils import timezone
    from django_q.models import Schedule

    now = timezone.localtime()
    first = now.replace(hour=settings.RECONCILE_NIGHTLY_HOUR, minute=0, second=0, microsecond=0)
    if first <= now:
        first += timedelta(days=1)
    Schedule.objects.get_or_create(
        name="reconciliation: nightly",
        defaults={"func": "billing.tasks.reconcile_nightly", "schedule_type": Schedule.DAILY, "repeats": -1,
                  "next_run": first},
    )


class BillingConfig(AppConfig):
    name = "billing"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from .dunning import wiring as dunning_wiring

        dunning_wiring.connect(self)
        post_migrate.connect(ensure_schedules, sender=self, dispatch_uid="billing.ensure_schedules")
