"""`fhir`: FHIR R4 over REST.

- Patient: found by our business identifier (`<system base>/<practice>/member|<member number>`),
  created with a conditional create (`If-None-Exist`) when missing (`record_config.create_patients`,
  default true), and linked through `Member.record_patient_id`.
- Membership and balances: one `Account` per membership (identifier `…/membership|<membership id>`)
  with extensions for tier, status, last refill and one `entitlement` per service.
- Chart flag: one `Flag` per member (identifier `…/chart-flag|<member number>`, Flag has no
  category/code search on every server), set `active` / `inactive`.
- Every update is a read-modify-write with `If-Match` (a 412 re-reads and tries again); searches
  send `Prefer: handling=strict` so a misspelt parameter fails instead of matching everything; an
  unchanged resource is not written again (no version churn on a retried delivery).
- Inbound: a rest-hook Subscription (`Procedure?status=completed`, `channel.header`
  `Authorization: Bearer <record_webhook_secret>`) or any signed webhook that carries a Procedure,
  ChargeItem or Appointment. The resource is re-read from the server before acting.

`record_config`: `base_url` (e.g. http://127.0.0.1:8090/fhir), optional `token` (bearer for the
server), `identifier_system` (default settings.RECORD_FHIR_IDENTIFIER_BASE), `appointment_system`,
`create_patients`.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any, Callable

from django.conf import settings

from memberships.models import Member

from . import base, http
from .base import (SIGNATURE_HEADER, BaseAdapter, RecordRejected, RecordUnavailable, WebhookRejected,
                   appointment_event, read_json, signature_matches, tokens_match)

FHIR_JSON = "application/fhir+json"
ACCOUNT_STATUS = {"pending": "on-hold", "active": "active", "past_due": "active", "paused": "on-hold",
                  "lapsed": "inactive", "cancelled": "inactive"}
INBOUND_TYPES = ("Procedure", "ChargeItem", "Appointment")


class Conflict(Exception):
    """412: someone else wrote the resource since we read it."""


def _money(cents: int, currency: str) -> dict:
    value = cents // 100 if cents % 100 == 0 else round(cents / 100, 2)
    return {"value": value, "currency": currency.upper()}


def _strip(resource: dict | None) -> dict:
    return {k: v for k, v in (resource or {}).items() if k not in ("id", "meta", "text")}


def _ref_id(reference: str | None, rtype: str) -> str:
    prefix = f"{rtype}/"
    if reference and reference.startswith(prefix):
        return reference[len(prefix):].split("/_history")[0]
    if reference and f"/{prefix}" in reference:  # absolute reference
        return reference.split(f"/{prefix}", 1)[1].split("/")[0]
    return ""


class FhirAdapter(BaseAdapter):
    name = "fhir"
    outbound = True

    def __init__(self, practice, location=None):
        super().__init__(practice, location)
        self.base_url = str(self.config.get("base_url") or "").rstrip("/")
        root = str(self.config.get("identifier_system") or settings.RECORD_FHIR_IDENTIFIER_BASE).rstrip("/")
        self.ext = f"{root}/fhir/StructureDefinition"
        self.member_system = f"{root}/{practice.slug}/member"
        self.membership_system = f"{root}/{practice.slug}/membership"
        self.flag_system = f"{root}/{practice.slug}/chart-flag"
        self.flag_reason_system = f"{root}/flag-reason"
        self.service_system = f"{root}/{practice.slug}/service"
        self.appointment_system = str(self.config.get("appointment_system") or f"{root}/{practice.slug}/appointment")
        self._session = None

    # --- HTTP ------------------------------------------------------------------------------------

    @property
    def session(self):
        if self._session is None:
            if not self.base_url:
                raise RecordRejected("record_config.base_url is not set for this practice.")
            self._session = http.session()
            self._session.headers.update({"Accept": FHIR_JSON})
            if self.config.get("token"):
                self._session.headers["Authorization"] = f"Bearer {self.config['token']}"
        return self._session

    def _call(self, method: str, path: str, *, ok=(200, 201), body: dict | None = None,
              headers: dict | None = None, params=None):
        h = dict(headers or {})
        data = None
        if body is not None:
            h["Content-Type"] = FHIR_JSON
            data = json.dumps(body).encode()
        return http.send(self.session, method, f"{self.base_url}/{path}", ok=ok, data=data, headers=h,
                         params=params)

    def search(self, rtype: str, params: dict) -> list[dict]:
        response = self._call("GET", rtype, params=params, headers={"Prefer": "handling=strict"})
        bundle = response.json()
        return [e["resource"] for e in bundle.get("entry", []) if e.get("search", {}).get("mode") == "match"]

    def read(self, rtype: str, rid: str) -> dict | None:
        response = self._call("GET", f"{rtype}/{rid}", ok=(200, 404, 410))
        return response.json() if response.status_code == 200 else None

    def _create(self, rtype: str, body: dict, *, if_none_exist: str) -> tuple[dict, bool]:
        response = self._call("POST", rtype, body=body, headers={"If-None-Exist": if_none_exist})
        return response.json(), response.status_code == 201

    def _update(self, rtype: str, resource: dict, body: dict) -> dict:
        version = (resource.get("meta") or {}).get("versionId", "")
        response = self._call("PUT", f"{rtype}/{resource['id']}", ok=(200, 201, 412),
                              body={**body, "id": resource["id"]}, headers={"If-Match": f'W/"{version}"'})
        if response.status_code == 412:
            raise Conflict(f"{rtype}/{resource['id']}")
        return response.json()

    def _upsert(self, rtype: str, *, system: str, value: str, build: Callable[[dict | None], dict | None]) -> dict:
        """Find by our identifier, create it conditionally when missing, else update it with
        If-Match; skip the write when nothing changed. `build(existing)` returns the body, or None
        to leave things as they are (e.g. clearing a flag that was never set)."""
        token = f"{system}|{value}"
        for _ in range(3):
            found = self.search(rtype, {"identifier": token})
            if len(found) > 1:
                raise RecordRejected(f"{len(found)} {rtype} resources carry identifier {token}")
            existing = found[0] if found else None
            body = build(existing)
            if body is None:
                return {"id": existing["id"] if existing else None, "written": False}
            if existing is None:
                created, new = self._create(rtype, body, if_none_exist=f"identifier={token}")
                if new:
                    return {"id": created["id"], "version": created["meta"]["versionId"], "written": True}
                continue  # someone created it meanwhile: update that one
            if _strip(existing) == _strip(body):
                return {"id": existing["id"], "version": existing["meta"]["versionId"], "written": False}
            try:
                updated = self._update(rtype, existing, body)
            except Conflict:
                continue
            return {"id": updated["id"], "version": updated["meta"]["versionId"], "written": True}
        raise RecordUnavailable(f"{rtype} {token} kept changing under us (412)")

    # --- patient --------------------------------------------------------------------------------

    def _identifier(self, member: Member) -> str:
        return f"{self.member_system}|{member.member_number}"

    def find_patient(self, member: Member) -> str | None:
        if member.record_patient_id and self.read("Patient", member.record_patient_id) is not None:
            return member.record_patient_id
        found = self.search("Patient", {"identifier": self._identifier(member)})
        return found[0]["id"] if found else None

    def link_patient(self, member: Member) -> str:
        patient_id = self.find_patient(member)
        if patient_id is None:
            if not self.config.get("create_patients", True):
                raise RecordRejected(f"No patient with identifier {self._identifier(member)} in the record.")
            body = {"resourceType": "Patient", "active": True,
                    "identifier": [{"system": self.member_system, "value": member.member_number}],
                    "name": [{"family": member.last_name, "given": [member.first_name]}]}
            created, _ = self._create("Patient", body, if_none_exist=f"identifier={self._identifier(member)}")
            patient_id = created["id"]
        if member.record_patient_id != patient_id:
            Member.objects.filter(pk=member.pk).update(record_patient_id=patient_id)
            member.record_patient_id = patient_id
        return patient_id

    # --- membership and balances: Account -----------------------------------------------------------

    def _membership_extensions(self, state: base.MembershipState) -> list[dict]:
        return [{"url": f"{self.ext}/membership-tier", "valueString": state.tier_code},
                {"url": f"{self.ext}/membership-status", "valueCode": state.status}]

    def _summary_extensions(self, summary: base.EntitlementSummary) -> list[dict]:
        out: list[dict] = [{"url": f"{self.ext}/membership-cycle", "valueInteger": summary.cycle_number}]
        if summary.last_refill_at:
            out.append({"url": f"{self.ext}/last-refill", "valueDateTime": summary.last_refill_at.isoformat()})
        for line in summary.lines:
            def amount(n: int) -> dict:
                return ({"valueMoney": _money(n, summary.currency)} if line.kind == "credit"
                        else {"valueInteger": n})
            parts = [
                {"url": "service", "valueCoding": {"system": self.service_system, "code": line.service_code,
                                                   "display": line.service_name}},
                {"url": "remaining", **amount(line.balance)},
                {"url": "reserved", **amount(line.reserved)},
                {"url": "available", **amount(line.available)},
                {"url": "rollover", "valueString": line.rollover_in_words},
                {"url": "frozen", "valueBoolean": line.frozen},
            ]
            if line.per_cycle is not None:
                parts.append({"url": "per-cycle", **amount(line.per_cycle)})
            out.append({"url": f"{self.ext}/entitlement", "extension": parts})
        return out

    def _write_account(self, member: Member, *, membership_id: int, state: base.MembershipState | None = None,
                       summary: base.EntitlementSummary | None = None) -> dict:
        patient_id = self.link_patient(member)
        membership_urls = {f"{self.ext}/membership-tier", f"{self.ext}/membership-status"}
        summary_urls = {f"{self.ext}/membership-cycle", f"{self.ext}/last-refill", f"{self.ext}/entitlement"}

        def build(existing: dict | None) -> dict:
            body = _strip(existing) if existing else {
                "resourceType": "Account",
                "identifier": [{"system": self.membership_system, "value": str(membership_id)}],
                "type": {"text": "membership"},
            }
            body["subject"] = [{"reference": f"Patient/{patient_id}"}]
            old = body.get("extension", [])
            # Canonical order (membership, summary, anything else), so an unchanged Account compares equal.
            body["extension"] = (
                (self._membership_extensions(state) if state else [e for e in old if e.get("url") in membership_urls])
                + (self._summary_extensions(summary) if summary else [e for e in old if e.get("url") in summary_urls])
                + [e for e in old if e.get("url") not in membership_urls | summary_urls]
            )
            if state:
                body["status"] = ACCOUNT_STATUS.get(state.status, "unknown")
                body["name"] = f"{state.tier_name} membership"
                body["description"] = f"{state.tier_name} — {state.status_display}"
                period = {k: v.date().isoformat() for k, v in
                          (("start", state.current_period_start or state.started_at),
                           ("end", state.current_period_end)) if v}
                body["servicePeriod"] = period
            body.setdefault("status", "active")
            return body

        return self._upsert("Account", system=self.membership_system, value=str(membership_id), build=build)

    def write_membership(self, member: Member, state: base.MembershipState) -> dict:
        return self._write_account(member, membership_id=state.membership_id, state=state)

    def write_entitlement_summary(self, member: Member, summary: base.EntitlementSummary) -> dict:
        return self._write_account(member, membership_id=summary.membership_id, summary=summary)

    def sync_member(self, member, state, *, event_ref: str, now: datetime) -> dict:
        """One Account write for membership and balances together, then the flag."""
        result: dict[str, Any] = {"patient_id": self.link_patient(member)}
        if state.membership is not None:
            result["account"] = self._write_account(member, membership_id=state.membership.membership_id,
                                                    state=state.membership, summary=state.summary)
        result["flag"] = (self.set_chart_flag(member, state.flag) if state.flag
                          else self.clear_chart_flag(member, now=now))
        return result

    # --- chart flag: Flag --------------------------------------------------------------------------

    def set_chart_flag(self, member: Member, flag: base.ChartFlag) -> dict:
        patient_id = self.link_patient(member)

        def build(existing: dict | None) -> dict:
            keep_start = existing and existing.get("status") == "active"
            start = (existing.get("period") or {}).get("start") if keep_start else None
            return {
                "resourceType": "Flag",
                "identifier": [{"system": self.flag_system, "value": member.member_number}],
                "status": "active",
                "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/flag-category",
                                          "code": "admin", "display": "Administrative"}]}],
                "code": {"coding": [{"system": self.flag_reason_system, "code": flag.reason}], "text": flag.text},
                "subject": {"reference": f"Patient/{patient_id}"},
                "period": {"start": start or flag.since.isoformat()},
            }

        return self._upsert("Flag", system=self.flag_system, value=member.member_number, build=build)

    def clear_chart_flag(self, member: Member, *, now: datetime) -> dict:
        def build(existing: dict | None) -> dict | None:
            if existing is None or existing.get("status") != "active":
                return None
            body = _strip(existing)
            body["status"] = "inactive"
            body["period"] = {**(body.get("period") or {}), "end": now.isoformat()}
            return body

        return self._upsert("Flag", system=self.flag_system, value=member.member_number, build=build)

    # --- reads for reconciliation ------------------------------------------------------------------

    def read_patient_snapshot(self, member: Member) -> dict | None:
        """What the chart says now: {tier, status, flags} (None when the patient is not there)."""
        patient_id = self.find_patient(member)
        if patient_id is None:
            return None
        accounts = self.search("Account", {"patient": f"Patient/{patient_id}",
                                           "identifier": f"{self.membership_system}|"})
        accounts.sort(key=lambda a: int(a["identifier"][0]["value"]) if a["identifier"][0]["value"].isdigit() else 0)
        ext = {e["url"]: e for e in (accounts[-1].get("extension", []) if accounts else [])}
        flags = self.search("Flag", {"patient": f"Patient/{patient_id}", "identifier": f"{self.flag_system}|",
                                     "status": "active"})
        return {
            "tier": ext.get(f"{self.ext}/membership-tier", {}).get("valueString"),
            "status": ext.get(f"{self.ext}/membership-status", {}).get("valueCode"),
            "flags": sorted({c["code"] for f in flags for c in f.get("code", {}).get("coding", [])
                             if c.get("system") == self.flag_reason_system}),
        }

    # --- inbound --------------------------------------------------------------------------------------

    def verify_webhook(self, request, *, body: bytes) -> base.InboundWebhook:
        secret = self.webhook_secret
        auth = request.headers.get("Authorization", "")
        bearer = auth[7:].strip() if auth.lower().startswith("bearer ") else ""
        if not (tokens_match(bearer, secret) or signature_matches(body, secret, request.headers.get(SIGNATURE_HEADER, ""))):
            raise WebhookRejected("Missing or wrong bearer token / signature.")
        if not body.strip():
            raise WebhookRejected("Subscribe with payload application/fhir+json: an empty notification "
                                  "names no resource.", code="empty_notification", status=400)
        resource = read_json(body)
        rtype, rid = resource.get("resourceType"), resource.get("id")
        if rtype not in INBOUND_TYPES or not rid:
            raise WebhookRejected(f"Expected a {', '.join(INBOUND_TYPES)} with an id.", code="invalid_payload",
                                  status=400)
        version = (resource.get("meta") or {}).get("versionId", "0")
        return self.inbound_webhook(event_id=f"{rtype}/{rid}/_history/{version}",
                                    event_type=f"{rtype}.{resource.get('status', '')}",
                                    payload={"resourceType": rtype, "id": rid, "meta": resource.get("meta") or {}})

    def parse_webhook(self, payload: dict[str, Any]) -> list[base.RecordEvent]:
        """Re-read the resource from the server (the notification may be stale, replayed or
        forged with a leaked secret) and turn its current state into our events."""
        rtype, rid = payload.get("resourceType"), payload.get("id")
        if rtype not in INBOUND_TYPES or not rid:
            return []
        resource = self.read(rtype, str(rid))
        if resource is None:
            return []
        return self.events_from_resource(resource)

    def _appointment_ref(self, resource: dict) -> str:
        for identifier in resource.get("identifier", []):
            if identifier.get("system") == self.appointment_system and identifier.get("value"):
                return str(identifier["value"])
        return f"{resource['resourceType']}/{resource['id']}"

    @staticmethod
    def _code(concept: dict | None) -> str:
        concept = concept or {}
        for coding in concept.get("coding", []):
            if coding.get("code"):
                return str(coding["code"])
        return str(concept.get("text") or "")

    def events_from_resource(self, resource: dict) -> list[base.RecordEvent]:
        rtype, status = resource.get("resourceType"), resource.get("status")
        common = {"appointment_id": self._appointment_ref(resource)[:200], "quantity_stated": False}
        if rtype == "Procedure":
            common.update(patient_id=_ref_id((resource.get("subject") or {}).get("reference"), "Patient"),
                          service_code=self._code(resource.get("code")))
            if status == "completed":
                return [appointment_event("completed", **common)]
            if status == "not-done":
                return [appointment_event("cancelled", **common)]
            return []
        if rtype == "ChargeItem":
            stated = int(((resource.get("quantity") or {}).get("value")) or 0)
            common.update(patient_id=_ref_id((resource.get("subject") or {}).get("reference"), "Patient"),
                          service_code=self._code(resource.get("code")), quantity=max(stated, 1), quantity_stated=stated > 0)
            return [appointment_event("completed", **common)] if status in ("billable", "billed") else []
        if rtype == "Appointment":
            patient = next((_ref_id((p.get("actor") or {}).get("reference"), "Patient")
                            for p in resource.get("participant", [])
                            if _ref_id((p.get("actor") or {}).get("reference"), "Patient")), "")
            service_types = resource.get("serviceType") or [{}]
            common.update(patient_id=patient, service_code=self._code(service_types[0]))
            if status in ("booked", "arrived", "checked-in"):
                return [appointment_event("booked", **common)]
            if status in ("cancelled", "noshow"):
                return [appointment_event("no_show" if status == "noshow" else "cancelled", **common)]
        return []

    # --- subscription ---------------------------------------------------------------------------------

    def ensure_subscription(self, *, endpoint: str, criteria: str = "Procedure?status=completed") -> dict:
        """Create, re-enable or re-key (a secret replaced since) the rest-hook Subscription of completed
        Procedures. Hooks are best effort (a failing endpoint switches them off): keep a periodic search too."""
        header = [f"Authorization: Bearer {self.webhook_secret}"]
        found = [s for s in self.search("Subscription", {"url": endpoint}) if s.get("criteria") == criteria]
        if found:
            sub = found[0]
            channel = sub.get("channel") or {}
            if sub.get("status") != "active" or channel.get("header") != header:
                self._update("Subscription", sub, {**_strip(sub), "status": "requested",
                                                   "channel": {**channel, "header": header}})
        else:
            body = {"resourceType": "Subscription", "status": "requested", "reason": "membership ledger",
                    "criteria": criteria,
                    "channel": {"type": "rest-hook", "endpoint": endpoint, "payload": FHIR_JSON, "header": header}}
            sub = self._call("POST", "Subscription", body=body).json()
        current = self.read("Subscription", sub["id"]) or sub
        return {"id": current["id"], "status": current.get("status"), "error": current.get("error", "")}
