"""The record side: adapters per practice (`Practice.record_adapter`), the outbox destination that
keeps the chart in step with the ledger, and the inbound services that turn record events into
reservations and redemptions."""

from __future__ import annotations

from memberships.models import Practice

ADAPTERS = {
    "builtin": "integrations.records.builtin.BuiltinAdapter",
    "webhook": "integrations.records.webhook.WebhookAdapter",
    "fhir": "integrations.records.fhir.FhirAdapter",
    "zenoti": "integrations.records.zenoti.ZenotiAdapter",
}


class UnknownAdapter(LookupError):
    pass


def adapter_class(name: str):
    from django.utils.module_loading import import_string

    try:
        return import_string(ADAPTERS[name])
    except KeyError:
        raise UnknownAdapter(name) from None


def get_adapter(practice: Practice):
    """The practice's record adapter, configured from `record_config`."""
    return adapter_class(practice.record_adapter or "builtin")(practice)
