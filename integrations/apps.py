from django.apps import AppConfig
from django.db.models.signals import post_migrate, post_save


def _fan_out(sender, instance, created, raw=False, **kwargs):
    if created and not raw:
        from .outbox import fan_out

        fan_out(instance)


def ensure_schedules(**kwargs) -> None:
    """The periodic jobs (catch-up off: each job computes what is due now from the database)."""
    from django_q.models import Schedule

    Schedule.objects.update_or_create(
        name="outbox: dispatch due deliveries",
        defaults={"func": "integrations.tasks.dispatch_deliveries", "schedule_type": Schedule.MINUTES,
                  "minutes": 1, "repeats": -1},
    )
    Schedule.objects.update_or_create(
        name="inbox: process due webhooks",
        defaults={"func": "integrations.tasks.process_inbound_backlog", "schedule_type": Schedule.MINUTES,
                  "minutes": 1, "repeats": -1},
    )


class IntegrationsConfig(AppConfig):
    name = "integrations"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from memberships.models import Event

        post_save.connect(_fan_out, sender=Event, dispatch_uid="integrations.outbox.fan_out")
        post_migrate.connect(ensure_schedules, sender=self, dispatch_uid="integrations.ensure_schedules")

        from .stopping import raise_flag_when_the_cluster_stops

        # A stopping qcluster tells its workers, so the drains stop between two batches (see
        # integrations.stopping); this runs in the qcluster process before it forks its workers.
        raise_flag_when_the_cluster_stops()

        from .outbox import register
        from .processors.sync import destination as processor_destination

        register(processor_destination)

        from memberships.services.common import register_event_sink
        from memberships.services.walk_in import register_event_audience

        from .outbox import fan_out_many

        register_event_sink(fan_out_many)               # events written in bulk (renewal day)

        from .outbox import registered

        # A redemption done in one database call shares its transaction with the fan-out whenever a
        # destination wants its event.
        register_event_audience(lambda event: any(d.wants(event) for d in registered().values()))
        from .records import admin as records_admin  # noqa: F401  (admin for the record side)
        from .records import destination  # noqa: F401  (registers the `record` outbox destination)

        from .messaging.destinations import MemberMessageDestination
        from .processors.dunning_destination import PaymentRetryDestination

        register(MemberMessageDestination())
        register(PaymentRetryDestination())

        from billing.reconciliation.snapshots import register_source

        from .processors.stripe_read import processor_source
        from .records.snapshots import record_source

        register_source("processor", processor_source)   # reconciliation reads them, never writes
        register_source("record", record_source)
        from billing.rollout.stages import register_shadow_reader

        from .shadow import shadow_entries

        register_shadow_reader(shadow_entries)          # the rollout page's "would have …" log
        from billing.metrics import register_attention_reader

        from .selectors import needs_attention

        register_attention_reader(needs_attention)      # the dashboard's "Needs attention" box
        from memberships.selectors import register_chart_count

        from .records.selectors import member_open_count, practice_open_count

        # The chart shows the member's open record exceptions and the navigation the practice's,
        # both read in the chart's own query.
        register_chart_count("member_open_record_exceptions", member_open_count)
        register_chart_count("open_record_exceptions", practice_open_count)
