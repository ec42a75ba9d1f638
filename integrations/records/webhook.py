"""`webhook`: a generic signed webhook in, and a signed webhook out to any URL — for records that
only offer Zapier-style automations (Aesthetic Record) and for Boulevard until its own adapter.

Signature (both directions): `X-Medspa-Signature: sha256=<hex>`, the HMAC-SHA256 of the raw body
with the practice's `record_webhook_secret` (a location's own record: the location's, never the
practice's). Inbound, the practice is named by the
`X-Medspa-Practice` header, a `?practice=<slug>` query parameter, or the path
`/webhooks/records/webhook/<slug>/`. The payloads are documented in the README ("Record webhooks").
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict
from datetime import datetime
from typing import Any

from django.utils.dateparse import parse_datetime

from memberships.models import Member

from . import base, http
from .base import SIGNATURE_HEADER, BaseAdapter, RecordRejected, WebhookRejected, read_json, sign, signature_matches

INBOUND_TYPES = {"appointment.booked": "booked", "appointment.cancelled": "cancelled",
                 "treatment.completed": "completed"}


def _iso(value) -> str | None:
    return value.isoformat() if isinstance(value, datetime) else value


def _json_ready(data: dict) -> dict:
    return json.loads(json.dumps(data, default=_iso))


def state_payload(state: base.MemberState) -> dict[str, Any]:
    """The chart panel as JSON (ids, codes, counts; no contact data)."""
    return _json_ready({
        "membership": asdict(state.membership) if state.membership else None,
        "entitlements": asdict(state.summary) if state.summary else None,
        "flag": ({"active": True, **asdict(state.flag)} if state.flag else {"active": False}),
    })


def parse_occurred_at(value) -> datetime | None:
    """`occurred_at` is optional; when given it must be an ISO 8601 date and time."""
    if value is None:
        return None
    try:
        parsed = parse_datetime(value) if isinstance(value, str) else None
    except ValueError:  # well formed but no such moment, e.g. month 13
        parsed = None
    if parsed is None or parsed.tzinfo is None:   # a moment without its offset is ambiguous by hours
        raise WebhookRejected("occurred_at must be an ISO 8601 date and time with its offset, "
                              "e.g. 2026-11-25T17:00:00Z.", code="invalid_payload", status=400)
    return parsed


def parse_generic(payload: dict[str, Any]) -> list[base.RecordEvent]:
    """Our own inbound shape → dataclasses. Raises WebhookRejected for a malformed payload."""
    outcome = INBOUND_TYPES.get(str(payload.get("type", "")))
    data = payload.get("data")
    if outcome is None or not isinstance(data, dict):
        raise WebhookRejected("Unknown event type or missing data.", code="invalid_payload", status=400)
    appointment_id = str(data.get("appointment_id") or "").strip()
    if not appointment_id:
        raise WebhookRejected("data.appointment_id is required.", code="invalid_payload", status=400)
    quantity = data.get("quantity", 1)
    if not base.valid_quantity(quantity):
        raise WebhookRejected(f"data.quantity must be a whole number from 1 to {base.MAX_QUANTITY}.",
                              code="invalid_payload", status=400)
    occurred = parse_occurred_at(data.get("occurred_at") or payload.get("occurred_at"))
    fields = dict(
        appointment_id=appointment_id[:200],
        patient_id=str(data.get("patient_id") or "")[:200],
        member_number=str(data.get("member_number") or "")[:20],
        service_code=str(data.get("service_code") or "")[:200],
        quantity=quantity,
        quantity_stated="quantity" in data,
        occurred_at=occurred,
    )
    if outcome == "cancelled" and data.get("reason") == "no_show":
        outcome = "no_show"
    return [base.appointment_event(outcome, **fields)]


class WebhookAdapter(BaseAdapter):
    name = "webhook"
    outbound = True

    # --- inbound -------------------------------------------------------------------------------

    def verify_webhook(self, request, *, body: bytes) -> base.InboundWebhook:
        if not signature_matches(body, self.webhook_secret, request.headers.get(SIGNATURE_HEADER, "")):
            raise WebhookRejected("The signature does not match.")
        payload = read_json(body)
        parse_generic(payload)  # malformed: 400 now, not a failed task later
        event_id = str(payload.get("id") or "").strip()
        if not event_id:
            raise WebhookRejected("id is required.", code="invalid_payload", status=400)
        return self.inbound_webhook(event_id=event_id, event_type=payload["type"], payload=payload)

    def parse_webhook(self, payload: dict[str, Any]) -> list[base.RecordEvent]:
        return parse_generic(payload)

    # --- outbound ------------------------------------------------------------------------------

    def _post(self, body: dict[str, Any]) -> dict:
        url = self.config.get("outbound_url")
        if not url:
            raise RecordRejected("record_config.outbound_url is not set for this practice.")
        raw = json.dumps(body, separators=(",", ":"), sort_keys=True).encode()
        headers = {
            "Content-Type": "application/json",
            SIGNATURE_HEADER: sign(raw, self.webhook_secret),
            "X-Medspa-Event-Id": body["id"],
            "X-Medspa-Practice": self.practice.slug,
        }
        response = http.send(http.session(), "POST", url, data=raw, headers=headers, ok=range(200, 300))
        return {"id": body["id"], "status": response.status_code}

    def _envelope(self, member: Member, type_: str, *, event_id: str, now: datetime, **parts) -> dict:
        return _json_ready({
            "id": event_id, "type": type_, "occurred_at": now, "practice": self.practice.slug,
            "patient": {"patient_id": member.record_patient_id or None, "member_number": member.member_number},
            **parts,
        })

    @staticmethod
    def _content_id(type_: str, member: Member, parts: dict) -> str:
        digest = hashlib.sha256(json.dumps(parts, sort_keys=True, default=_iso).encode()).hexdigest()[:24]
        return f"{type_}-{member.pk}-{digest}"

    def _send_part(self, member: Member, type_: str, now: datetime | None = None, **parts) -> dict:
        from django.utils import timezone

        now = now or timezone.now()
        body = self._envelope(member, type_, event_id=self._content_id(type_, member, _json_ready(parts)),
                              now=now, **parts)
        return self._post(body)

    def write_membership(self, member: Member, state: base.MembershipState) -> dict:
        return self._send_part(member, "membership.updated", membership=asdict(state))

    def write_entitlement_summary(self, member: Member, summary: base.EntitlementSummary) -> dict:
        return self._send_part(member, "entitlements.updated", entitlements=asdict(summary))

    def set_chart_flag(self, member: Member, flag: base.ChartFlag) -> dict:
        return self._send_part(member, "flag.set", flag={"active": True, **asdict(flag)})

    def clear_chart_flag(self, member: Member, *, now: datetime) -> dict:
        return self._send_part(member, "flag.cleared", now=now, flag={"active": False})

    def sync_member(self, member: Member, state: base.MemberState, *, event_ref: str, now: datetime) -> dict:
        """One `member.updated` POST carrying the whole chart panel; its id is the delivery's
        idempotency key, so the receiver can drop a retried copy."""
        return self._post(self._envelope(member, "member.updated", event_id=event_ref, now=now,
                                         **state_payload(state)))
