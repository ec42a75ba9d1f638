"""`builtin`: this project's own staff pages are the chart. Nothing leaves: the outbox creates no
record deliveries for such practices, and the snapshot is read from the ledger itself."""

from __future__ import annotations

from datetime import datetime

from memberships.models import Member

from .base import BaseAdapter, ChartFlag, EntitlementSummary, MembershipState, WebhookRejected


class BuiltinAdapter(BaseAdapter):
    name = "builtin"
    outbound = False

    def write_membership(self, member: Member, state: MembershipState) -> dict:
        return {}

    def write_entitlement_summary(self, member: Member, summary: EntitlementSummary) -> dict:
        return {}

    def set_chart_flag(self, member: Member, flag: ChartFlag) -> dict:
        return {}

    def clear_chart_flag(self, member: Member, *, now: datetime) -> dict:
        return {}

    def read_patient_snapshot(self, member: Member) -> dict | None:
        from .selectors import member_state

        state = member_state(member=member)
        return {
            "tier": state.membership.tier_code if state.membership else None,
            "status": state.membership.status if state.membership else None,
            "flags": [state.flag.reason] if state.flag else [],
        }

    def verify_webhook(self, request, *, body: bytes):
        raise WebhookRejected("The builtin chart takes no webhooks.", code="adapter_not_inbound", status=404)
