from django.apps import AppConfig
from django.db.models.signals import post_migrate


def ensure_schedule(**kwargs) -> None:
    """The worker's heartbeat, every minute (catch-up is off: a missed beat is not replayed, the next
    one says the worker is back)."""
    from django_q.models import Schedule

    Schedule.objects.update_or_create(
        name="health: worker heartbeat",
        defaults={"func": "medspa.health.tasks.beat", "schedule_type": Schedule.MINUTES, "minutes": 1,
                  "repeats": -1},
    )


class HealthConfig(AppConfig):
    name = "medspa.health"
    label = "health"
    verbose_name = "Health"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        post_migrate.connect(ensure_schedule, sender=self, dispatch_uid="health.ensure_schedule")
