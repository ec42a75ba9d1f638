"""`zenoti`: Zenoti's REST API (`Authorization: apikey <key>`).

- Patient = guest: `record_patient_id`, else `GET /v1/guests/search?email=…`, else (when
  `record_config.create_patients`, default true) `POST /v1/guests`.
- Chart flag = a guest note with an alert: `POST /v1/guests/{guest_id}/notes` with `notes`,
  `alert: true`, `note_type: 8` (Payment); cleared with `PUT /v1/guests/{guest_id}/notes/{note_id}`
  and `alert: false`. Zenoti notes carry no identifier of ours, so the note id is kept in
  `RecordObject` and every later write updates that note. Our notes end with a tag
  (`NOTE_TAGS`): when no `RecordObject` is known — the first write, or a retry after a call that
  timed out once Zenoti had made the note (our transaction, and the `RecordObject`, rolled back) —
  the guest's notes are listed (`GET /v1/guests/{guest_id}/notes`) and a note with our tag is
  taken over instead of creating a second one.
- Membership and balances: Zenoti's guest memberships are its own sales, which we do not create;
  the summary is one plain guest note (not an alert), updated in place the same way.
- Inbound: Zenoti signs nothing, so the webhook carries the record's secret (the practice's, or a
  location's own for a location's own record): in a header
  (`X-Medspa-Token: <record_webhook_secret>`, or `Authorization: Bearer …`) where the webhook can
  be given one, else in the URL (`?token=…`, while ZENOTI_URL_TOKEN_ALLOWED). The envelope is
  `{id, event_id, event_type, event_timestamp, data}`; we take the appointment id from `data`,
  re-fetch `GET /v1/appointments/{id}` and act on the appointment's current status.

UNSURE (not in Zenoti's public reference we could check; proven only against the recorded shapes in
tests/fixtures/zenoti/): the appointment status numbers, the note id field in the note-create
answer and the shape of the note list (`{"notes": [...], "page_info": …}`, `page` / `size` ≤ 100). The status
numbers are configurable in `record_config` (`status_booked`, `status_completed`, `status_cancelled`,
`status_no_show`); answers are read leniently.

`record_config`: `base_url` (default https://api.zenoti.com), `api_key`, `center_id`.
"""

from __future__ import annotations

import unicodedata
from datetime import datetime
from typing import Any

from django.conf import settings
from django.utils.dateparse import parse_datetime

from integrations.models import RecordObject
from memberships.models import Member

from . import base, http
from .base import BaseAdapter, RecordRejected, WebhookRejected, appointment_event, read_json, tokens_match

TOKEN_HEADER = "X-Medspa-Token"

PAYMENT_NOTE_TYPE = 8
# The end of every note we write, per kind: how a note of ours is found again without its id.
NOTE_TAGS = {"flag": " · membership ledger alert", "summary": " · membership ledger summary"}
NOTE_PAGE_SIZE, NOTE_PAGES = 100, 5
# Zenoti guest membership status codes (VENDORS.md) → our words, for the reconciliation snapshot.
MEMBERSHIP_STATUS = {1: "active", 2: "inactive", 3: "paused", 4: "cancelled", 5: "expired", 6: "closed",
                     7: "not_started", 8: "past_due", 9: "refund", 10: "deleted", 12: "failed"}
DEFAULT_STATUSES = {"status_booked": [0, 2, 4], "status_completed": [1], "status_cancelled": [-1],
                    "status_no_show": [-2]}


def _summary_text(member_state: base.MemberState, *, practice) -> str:
    state, summary = member_state.membership, member_state.summary
    if state is None:
        return "Membership: none"
    parts = [f"Membership: {state.tier_name} ({state.status_display})"]
    if summary is not None:
        for line in summary.lines:
            amount = (f"${line.available / 100:,.2f}" if line.kind == "credit" else f"{line.available}")
            parts.append(f"{line.service_name}: {amount} available ({line.rollover_in_words})")
        if summary.last_refill_at:
            parts.append(f"Last refill {practice.local_date(summary.last_refill_at):%Y-%m-%d}")   # the practice's day
    return "; ".join(parts)[:1900]


def _guest_of(guests: list[dict], member: Member) -> str | None:
    """The guest, among those of the member's email, who is the member: of her first name (a household
    shares an email — the mother's chart is not her daughter's). A guest whose name Zenoti leaves out
    is taken only when alone; else None (a new guest, or linked by hand)."""
    def first_name(guest: dict) -> str | None:
        name = (guest.get("personal_info") or {}).get("first_name", guest.get("first_name"))
        return _name_key(str(name)) or None if name is not None else None

    mine = [g for g in guests if first_name(g) == _name_key(member.first_name)]
    if not mine and len(guests) == 1 and first_name(guests[0]) is None:
        mine = guests
    return str(mine[0]["id"]) if mine else None


def _name_key(name: str) -> str:
    """A first name as two systems may spell the same one: case, accents and spacing aside ("Renée"
    and "renee", "Mary  Ann" and "mary ann"), so a chart written without an accent is still hers and
    no second guest is made for her."""
    letters = "".join(c for c in unicodedata.normalize("NFKD", name) if not unicodedata.combining(c))
    return " ".join(letters.casefold().split())


class ZenotiAdapter(BaseAdapter):
    name = "zenoti"
    outbound = True

    def __init__(self, practice, location=None):
        super().__init__(practice, location)
        self.base_url = str(self.config.get("base_url") or "https://api.zenoti.com").rstrip("/")
        self.center_id = str(self.config.get("center_id") or "")
        self._session = None

    @property
    def session(self):
        if self._session is None:
            if not self.config.get("api_key"):
                raise RecordRejected("record_config.api_key is not set for this practice.")
            self._session = http.session()
            self._session.headers.update({"Authorization": f"apikey {self.config['api_key']}",
                                          "Accept": "application/json"})
        return self._session

    def _call(self, method: str, path: str, **kwargs):
        return http.send(self.session, method, f"{self.base_url}{path}", **kwargs)

    # --- guest --------------------------------------------------------------------------------

    def find_patient(self, member: Member) -> str | None:
        if member.record_patient_id:
            return member.record_patient_id
        if not member.email:
            return None
        found = self._call("GET", "/v1/guests/search", params={"center_id": self.center_id,
                                                               "email": member.email}).json()
        return _guest_of(found.get("guests") or [], member)

    def link_patient(self, member: Member) -> str:
        guest_id = self.find_patient(member)
        if guest_id is None:
            if not self.config.get("create_patients", True):
                raise RecordRejected("No Zenoti guest matches this member; link the guest id by hand.")
            body = {"center_id": self.center_id,
                    "personal_info": {"first_name": member.first_name, "last_name": member.last_name,
                                      "email": member.email, "mobile_phone": {"number": member.phone}}}
            created = self._call("POST", "/v1/guests", json=body).json()
            guest_id = str(created.get("id") or (created.get("guest") or {}).get("id") or "")
            if not guest_id:
                raise RecordRejected("Zenoti created a guest but returned no id.")
        if member.record_patient_id != guest_id:
            Member.objects.filter(pk=member.pk).update(record_patient_id=guest_id)
            member.record_patient_id = guest_id
        return guest_id

    # --- notes ---------------------------------------------------------------------------------

    def _find_note(self, guest_id: str, kind: str) -> dict | None:
        """A note of ours of this kind among the guest's notes (by its tag), or None."""
        tag = NOTE_TAGS[kind]
        for page in range(1, NOTE_PAGES + 1):
            answer = self._call("GET", f"/v1/guests/{guest_id}/notes",
                                params={"page": page, "size": NOTE_PAGE_SIZE}).json()
            notes = (answer.get("notes") or answer.get("guest_notes") if isinstance(answer, dict) else answer) or []
            for note in notes:
                if isinstance(note, dict) and note.get("id") and str(note.get("notes") or "").endswith(tag):
                    return note
            if len(notes) < NOTE_PAGE_SIZE:
                return None
        return None

    def _known_note(self, member: Member, *, kind: str, guest_id: str) -> RecordObject | None:
        """The note of this kind we wrote for the member: from `RecordObject`, else found in Zenoti
        by its tag (then remembered with what it says now)."""
        known = RecordObject.objects.filter(member=member, adapter=self.name, kind=kind).first()
        if known is not None:
            return known
        found = self._find_note(guest_id, kind)
        if found is None:
            return None
        text = str(found.get("notes") or "")[:-len(NOTE_TAGS[kind])]
        return RecordObject.objects.create(practice=self.practice, member=member, adapter=self.name, kind=kind,
                                           external_id=str(found["id"]),
                                           state={"text": text, "alert": bool(found.get("alert"))})

    def _write_note(self, member: Member, *, kind: str, text: str, alert: bool, note_type: int,
                    create_if_missing: bool = True) -> dict:
        guest_id = self.link_patient(member)
        known = self._known_note(member, kind=kind, guest_id=guest_id)
        wanted = {"text": text, "alert": alert}
        if known is not None and known.state == wanted:
            return {"note_id": known.external_id, "written": False}
        body = {"notes": text + NOTE_TAGS[kind], "alert": alert, "note_type": note_type}
        if known is None:
            if not create_if_missing:
                return {"note_id": None, "written": False}
            answer = self._call("POST", f"/v1/guests/{guest_id}/notes", json=body).json()
            note_id = str(answer.get("id") or answer.get("note_id") or (answer.get("note") or {}).get("id") or "")
            if not note_id:
                raise RecordRejected("Zenoti accepted the note but returned no id.")
            RecordObject.objects.create(practice=self.practice, member=member, adapter=self.name, kind=kind,
                                        external_id=note_id, state=wanted)
            return {"note_id": note_id, "written": True}
        self._call("PUT", f"/v1/guests/{guest_id}/notes/{known.external_id}", json=body)
        RecordObject.objects.filter(pk=known.pk).update(state=wanted)
        return {"note_id": known.external_id, "written": True}

    def write_membership(self, member: Member, state: base.MembershipState) -> dict:
        return self._write_note(member, kind="summary", text=f"Membership: {state.tier_name} ({state.status_display})",
                                alert=False, note_type=int(self.config.get("summary_note_type", 1)))

    def write_entitlement_summary(self, member: Member, summary: base.EntitlementSummary) -> dict:
        from .selectors import member_state

        text = _summary_text(member_state(member=member), practice=self.practice)
        return self._write_note(member, kind="summary", text=text, alert=False, note_type=int(self.config.get("summary_note_type", 1)))

    def set_chart_flag(self, member: Member, flag: base.ChartFlag) -> dict:
        return self._write_note(member, kind="flag", text=flag.text, alert=True, note_type=PAYMENT_NOTE_TYPE)

    def clear_chart_flag(self, member: Member, *, now: datetime) -> dict:
        """Take the alert off our flag note. With no note on file, Zenoti is asked whether a flag
        note of ours is there anyway (a set whose answer was lost), so no alert is left behind."""
        known = RecordObject.objects.filter(member=member, adapter=self.name, kind="flag").first()
        if known is None:
            guest_id = self.find_patient(member)
            known = self._known_note(member, kind="flag", guest_id=guest_id) if guest_id else None
        if known is None or not known.state.get("alert"):
            return {"note_id": known.external_id if known else None, "written": False}
        return self._write_note(member, kind="flag", text=known.state.get("text", ""), alert=False,
                                note_type=PAYMENT_NOTE_TYPE, create_if_missing=False)

    def sync_member(self, member, state, *, event_ref: str, now: datetime) -> dict:
        result: dict[str, Any] = {"patient_id": self.link_patient(member)}
        result["summary"] = self._write_note(member, kind="summary", text=_summary_text(state, practice=self.practice),
                                             alert=False, note_type=int(self.config.get("summary_note_type", 1)))
        result["flag"] = (self.set_chart_flag(member, state.flag) if state.flag
                          else self.clear_chart_flag(member, now=now))
        return result

    def read_patient_snapshot(self, member: Member) -> dict | None:
        """The guest's Zenoti membership (tier = its code or name, status in our words) and the
        flags our alert note says are up."""
        guest_id = self.find_patient(member)
        if guest_id is None:
            return None
        answer = self._call("GET", f"/v1/guests/{guest_id}/memberships", params={"center_id": self.center_id}).json()
        rows = answer.get("memberships") or answer.get("guest_memberships") or []
        current = next((r for r in rows if r.get("status") == 1), rows[0] if rows else None)
        plan = (current or {}).get("membership") or {}
        known = RecordObject.objects.filter(member=member, adapter=self.name, kind="flag").first()
        return {
            "tier": plan.get("code") or plan.get("name") if current else None,
            "status": MEMBERSHIP_STATUS.get((current or {}).get("status"), None) if current else None,
            "flags": ["chart_alert"] if known is not None and known.state.get("alert") else [],
        }

    # --- inbound ------------------------------------------------------------------------------

    @staticmethod
    def webhook_token(request) -> str:
        """The shared secret: from the `X-Medspa-Token` header (or `Authorization: Bearer …`) when the
        webhook is set up with a custom header, else — while ZENOTI_URL_TOKEN_ALLOWED, for webhooks
        made before, since Zenoti documents no signature and no header of its own — `?token=`."""
        header = request.headers.get(TOKEN_HEADER, "")
        if not header and request.headers.get("Authorization", "").startswith("Bearer "):
            header = request.headers["Authorization"][len("Bearer "):]
        if header:
            return header.strip()
        return request.GET.get("token", "") if getattr(settings, "ZENOTI_URL_TOKEN_ALLOWED", True) else ""

    def verify_webhook(self, request, *, body: bytes) -> base.InboundWebhook:
        if not tokens_match(self.webhook_token(request), self.webhook_secret):
            raise WebhookRejected("Missing or wrong token.")
        envelope = read_json(body)
        call_id = str(envelope.get("id") or "").strip()
        if not call_id or not isinstance(envelope.get("data"), dict):
            raise WebhookRejected("Expected the Zenoti envelope {id, event_id, event_type, event_timestamp, data}.",
                                  code="invalid_payload", status=400)
        return self.inbound_webhook(event_id=call_id, event_type=str(envelope.get("event_type") or ""),
                                    payload=envelope)

    @staticmethod
    def appointment_ids(data: dict) -> list[str]:
        ids = [data.get("appointment_id")]
        ids += [a.get("appointment_id") or a.get("id") for a in data.get("appointments") or [] if isinstance(a, dict)]
        if not any(ids) and (data.get("appointment") or {}).get("id"):
            ids.append(data["appointment"]["id"])
        seen: list[str] = []
        for value in ids:
            if value and str(value) not in seen:
                seen.append(str(value))
        return seen

    def parse_webhook(self, payload: dict[str, Any]) -> list[base.RecordEvent]:
        """Re-fetch each appointment the event names and act on its current status."""
        events: list[base.RecordEvent] = []
        for appointment_id in self.appointment_ids(payload.get("data") or {}):
            response = self._call("GET", f"/v1/appointments/{appointment_id}", ok=(200, 404))
            if response.status_code == 404:
                continue
            events.extend(self.events_from_appointment(response.json(), appointment_id))
        return events

    def _statuses(self, key: str) -> set[int]:
        return {int(v) for v in self.config.get(key, DEFAULT_STATUSES[key])}

    def events_from_appointment(self, appointment: dict, appointment_id: str) -> list[base.RecordEvent]:
        appointment = appointment.get("appointment") or appointment
        guest = appointment.get("guest") or {}
        service = appointment.get("service") or {}
        status = appointment.get("status")
        start = appointment.get("start_time")
        fields = dict(appointment_id=str(appointment.get("appointment_id") or appointment_id)[:200],
                      patient_id=str(guest.get("id") or appointment.get("guest_id") or "")[:200],
                      service_code=str(service.get("code") or service.get("id") or "")[:200],
                      occurred_at=parse_datetime(start) if isinstance(start, str) else None,
                      quantity_stated=False)     # an appointment says no quantity: a hold commits as booked
        for outcome in ("completed", "booked", "no_show", "cancelled"):
            if status in self._statuses(f"status_{outcome}"):
                return [appointment_event(outcome, **fields)]
        return []
