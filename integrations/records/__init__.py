"""The record side: adapters per practice (`Practice.record_adapter`) or per location where a group
runs more than one record (`Location.record_adapter`, for the members whose home it is), the outbox destination that
keeps the chart in step with the ledger, and the inbound services that turn record events into
reservations and redemptions."""

from __future__ import annotations

from memberships.models import Location, Member, Practice

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


def own_record(location: Location | None) -> Location | None:
    """The location when it runs a record of its own (`Location.record_adapter` set), else None."""
    return location if location is not None and location.record_adapter else None


def record_name(practice: Practice, location: Location | None = None) -> str:
    """Which record a location's (else the practice's) chart lives in."""
    own = own_record(location)
    return (own.record_adapter if own is not None else practice.record_adapter) or "builtin"


def get_adapter(practice: Practice, location: Location | None = None):
    """The record adapter of the location when it has its own record (configured from the location's
    `record_config`), else the practice's (from the practice's `record_config`)."""
    own = own_record(location)
    return adapter_class(record_name(practice, own))(practice, location=own)


def member_record_location(member: Member) -> Location | None:
    """The member's home location when it runs its own record (select `home_location` with members
    read in a loop)."""
    return own_record(member.home_location) if member.home_location_id else None


def adapter_for_member(member: Member):
    """Where a member's chart is written and read: their home location's record, else the practice's."""
    return get_adapter(member.practice, member_record_location(member))
