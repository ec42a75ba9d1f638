"""Every periodic job of the project, in one place: the django-q2 `Schedule` rows, created or brought
up to date by one post_migrate handler (connected by medspa's own app, `medspa.health`).

Catch-up is off for the whole cluster (`Q_CLUSTER`): each job computes what is due now from the
database, so a missed or repeated run neither loses nor doubles work."""

from __future__ import annotations

from datetime import datetime, timedelta

from django.conf import settings
from django.db.models.signals import post_migrate
from django.utils import timezone

NIGHTLY_RECONCILIATION = "reconciliation: nightly"


def every_schedule() -> list[tuple[str, dict]]:
    """(name, fields) of each job that runs every hour or every few minutes."""
    from django_q.models import Schedule

    return [
        ("ledger: resume ended pauses, expire frozen credit",
         {"func": "memberships.tasks.ledger_housekeeping", "schedule_type": Schedule.HOURLY, "repeats": -1}),
        ("outbox: dispatch due deliveries",
         {"func": "integrations.tasks.dispatch_deliveries", "schedule_type": Schedule.MINUTES, "minutes": 1,
          "repeats": -1}),
        ("inbox: process due webhooks",
         {"func": "integrations.tasks.process_inbound_backlog", "schedule_type": Schedule.MINUTES, "minutes": 1,
          "repeats": -1}),
        # the run computes what is due from the steps table
        ("dunning: run due steps",
         {"func": "billing.dunning.tasks.run_dunning_task", "schedule_type": Schedule.MINUTES,
          "minutes": settings.DUNNING_RUN_EVERY_MINUTES, "repeats": -1}),
        # upcoming-charge and expiring-credit notices due now, each once per membership and boundary
        ("notices: upcoming charge, expiring credit",
         {"func": "billing.notices.tasks.plan_notices_task", "schedule_type": Schedule.HOURLY, "repeats": -1}),
        # payloads past INBOX_RETENTION_DAYS reduced to ids and outcome (what is due is in the table)
        ("inbox: reduce old payloads",
         {"func": "integrations.tasks.reduce_old_inbox_payloads", "schedule_type": Schedule.DAILY, "repeats": -1}),
        # joins abandoned before paying: their details deleted after JOIN_ATTEMPT_RETENTION_HOURS
        ("join online: purge abandoned joins",
         {"func": "portal.join.tasks.purge_abandoned_joins_task", "schedule_type": Schedule.HOURLY, "repeats": -1}),
        # member-page link requests and links: deleted after MEMBER_LINK_RETENTION_DAYS
        ("member page: delete old link requests",
         {"func": "portal.me.tasks.purge_old_member_links", "schedule_type": Schedule.DAILY, "repeats": -1}),
        # uploaded spreadsheets: their files emptied after IMPORT_FILE_RETENTION_DAYS (batch rows stay)
        ("import: remove old uploaded files",
         {"func": "billing.sheets.retention.remove_old_import_files_task", "schedule_type": Schedule.DAILY,
          "repeats": -1}),
        # every group's dashboard figures (billing.group.snapshot): the page reads them
        ("group dashboard: refresh figures",
         {"func": "billing.group.snapshot.refresh_all", "schedule_type": Schedule.MINUTES,
          "minutes": max(1, settings.GROUP_FIGURES_REFRESH_SECONDS // 60), "repeats": -1}),
        # a missed beat is not replayed: the next one says the worker is back
        ("health: worker heartbeat",
         {"func": "medspa.health.tasks.beat", "schedule_type": Schedule.MINUTES, "minutes": 1, "repeats": -1}),
    ]


def ensure_schedules(**kwargs) -> None:
    """Create every job, or bring it up to date. The nightly reconciliation is created once, first
    running at RECONCILE_NIGHTLY_HOUR; a later migrate leaves its next run where it is (a missed
    night is not replayed: the next run compares what is there then)."""
    from django_q.models import Schedule

    for name, fields in every_schedule():
        Schedule.objects.update_or_create(name=name, defaults=fields)
    Schedule.objects.get_or_create(
        name=NIGHTLY_RECONCILIATION,
        defaults={"func": "billing.tasks.reconcile_nightly", "schedule_type": Schedule.DAILY, "repeats": -1,
                  "next_run": _next_nightly_run()},
    )


def _next_nightly_run() -> datetime:
    now = timezone.localtime()
    first = now.replace(hour=settings.RECONCILE_NIGHTLY_HOUR, minute=0, second=0, microsecond=0)
    return first + timedelta(days=1) if first <= now else first


def connect(app_config) -> None:
    """Run `ensure_schedules` after every migrate (and flush), once: with `app_config` as sender."""
    post_migrate.connect(ensure_schedules, sender=app_config, dispatch_uid="medspa.schedules.ensure_schedules")
