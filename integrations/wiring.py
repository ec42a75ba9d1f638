"""What integrations plugs in when the app is ready (called from `IntegrationsConfig.ready`): the
outbox destinations, and what the core and billing call without importing integrations — the
ledger's bulk-event sink, walk-in audience and chart counts; billing's processor vocabulary,
reconciliation sources, rollout log and dashboard box. Its periodic jobs are listed with every
other in `medspa.schedules`."""

from __future__ import annotations

from billing.dunning.processor_retries import register_no_payment_retry
from billing.facts import register_invoice_reasons
from billing.metrics import register_attention_reader
from billing.reconciliation.snapshots import register_source
from billing.rollout.stages import register_shadow_reader
from memberships.selectors import register_chart_count
from memberships.services.common import register_event_sink
from memberships.services.walk_in import register_event_audience

from .messaging.destinations import MemberMessageDestination
from .messaging.notices import MemberNoticeDestination
from .outbox import fan_out_many, register, registered
from .processors import square_events, stripe_events
from .processors.dunning_destination import PaymentRetryDestination
from .processors.reading import processor_source
from .processors.sync import destination as processor_destination
from .records.selectors import member_open_count, practice_open_count
from .records.snapshots import record_source
from .selectors import needs_attention
from .shadow import shadow_entries
from .stopping import raise_flag_when_the_cluster_stops


def connect(app_config) -> None:
    # A stopping qcluster tells its workers, so the drains stop between two batches (see
    # integrations.stopping); this runs in the qcluster process before it forks its workers.
    raise_flag_when_the_cluster_stops()
    _register_destinations()
    _register_processor_vocabulary()
    _register_ledger_hooks()
    _register_billing_readers()
    # The chart shows the member's open record exceptions and the navigation the practice's, both
    # read in the chart's own query.
    register_chart_count("member_open_record_exceptions", member_open_count)
    register_chart_count("open_record_exceptions", practice_open_count)


def _register_destinations() -> None:
    """The outbox destinations, in delivery order: the processor, the record, member messages,
    member notices, payment retries."""
    register(processor_destination)
    from .records import admin as records_admin  # noqa: F401  (admin for the record side)
    from .records import destination  # noqa: F401  (registers the `record` outbox destination)

    register(MemberMessageDestination())
    register(MemberNoticeDestination())
    register(PaymentRetryDestination())


def _register_processor_vocabulary() -> None:
    """Which of Stripe's invoice reasons open a billing cycle: billing decides with them, never
    naming them itself."""
    register_invoice_reasons(stripe_events.PROCESSOR, stripe_events.INVOICE_REASONS)
    register_no_payment_retry(square_events.PROCESSOR, square_events.NO_PAYMENT_RETRY)


def _register_ledger_hooks() -> None:
    register_event_sink(fan_out_many)               # every timeline event, in its own transaction
    # A redemption done in one database call shares its transaction with the fan-out whenever a
    # destination wants its event.
    register_event_audience(lambda event: any(d.wants(event) for d in registered().values()))


def _register_billing_readers() -> None:
    register_source("processor", processor_source)   # reconciliation reads them, never writes
    register_source("record", record_source)
    register_shadow_reader(shadow_entries)          # the rollout page's "would have …" log
    register_attention_reader(needs_attention)      # the dashboard's "Needs attention" box
