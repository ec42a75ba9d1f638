"""Connections made when the app is ready: the periodic schedule (created on post_migrate)."""

from __future__ import annotations

from django.conf import settings
from django.db.models.signals import post_migrate


def ensure_schedule(**kwargs) -> None:
    """Every few minutes; catch-up is off in Q_CLUSTER, and the run computes what is due from the
    steps table, so a missed or repeated run neither loses nor doubles work."""
    from django_q.models import Schedule

    Schedule.objects.update_or_create(
        name="dunning: run due steps",
        defaults={"func": "billing.dunning.tasks.run_dunning_task", "schedule_type": Schedule.MINUTES,
                  "minutes": settings.DUNNING_RUN_EVERY_MINUTES, "repeats": -1},
    )


def connect(app_config) -> None:
    post_migrate.connect(ensure_schedule, sender=app_config, dispatch_uid="billing.dunning.ensure_schedule")
