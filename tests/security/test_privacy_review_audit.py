"""Every answer that shows a member leaves an audit row naming that member, the person who looked,
their address and where they work — generated from the URL conf and the admin's registry, so a new
page, export, API answer or admin screen that shows member data without its row fails here.

The world is the route matrix's (tests/security/test_route_matrix.py): our practice with one of
everything about Zelda Quixotic. Each page is opened by who may open it (a manager of our practice
working at one of its clinics; the group's pages by the group's manager; the admin also by a
superuser); when the answer carries anything that names Zelda (her surname, member number, email or
phone), the request must have written an audit row for her, by that person, from that address, at
that person's location."""

from __future__ import annotations

import logging
from datetime import timedelta

import pytest
from django.contrib import admin
from django.urls import reverse
from urllib.parse import urlencode
from django.utils import timezone

from memberships.models import AuditLog, StaffProfile
from tests.security.test_route_matrix import (  # noqa: F401  (world: the matrix's fixture)
    ROUTES, SIBLING_OPEN, URL_NAMES, _sign_in, _url, world)

FROM = "198.51.100.23"


def _identifiers(member) -> list[str]:
    digits = member.phone.lstrip("+")
    return [member.last_name, member.member_number, member.email, member.phone, digits[1:],
            f"{digits[1:4]}-{digits[4:7]}-{digits[7:]}", f"({digits[1:4]}) {digits[4:7]}-{digits[7:]}"]


def _names_member(body: str, member) -> str | None:
    return next((found for found in _identifiers(member) if found and found in body), None)


def _at_a_clinic(user, practice):
    """The staff member works at one of the practice's clinics today (the audit row says where)."""
    clinic = practice.locations.order_by("id").first() or practice.locations.create(name="Review clinic")
    StaffProfile.objects.filter(user=user).update(location=clinic)
    return clinic


def _check(client, user, url: str, member, *, route=None) -> tuple[bool, str | None]:
    """Whether the answer names her, and what is wrong with the request's audit trail (None: nothing
    shown, or shown and audited). A POST is sent with the route's form: an answer that shows her
    again (a form refused, a chart gone stale) is a view like any other."""
    before = AuditLog.objects.order_by("-id").values_list("id", flat=True).first() or 0
    if route is None or route.method == "GET":
        response = client.get(url, REMOTE_ADDR=FROM)
    elif route.access == "api":
        response = client.post(url, route.data, content_type="application/json", REMOTE_ADDR=FROM)
    else:
        response = client.post(url, route.data, REMOTE_ADDR=FROM)
    body = b"".join(response.streaming_content) if response.streaming else response.content
    found = _names_member(body.decode(errors="replace"), member)
    if found is None:
        return False, None
    rows = list(AuditLog.objects.filter(id__gt=before, member=member))
    if not rows:
        return True, f"{url} ({response.status_code}) shows {found!r} of member {member.pk} and writes no audit row for her"
    location = StaffProfile.objects.filter(user=user).values_list("location_id", flat=True).first()
    wrong = [(r.action, r.user_id, r.ip_address, r.location_id) for r in rows
             if (r.user_id, r.ip_address, r.location_id) != (user.pk, FROM, location)]
    if wrong:
        return True, (f"{url}: audit rows {wrong} do not say who ({user.pk}), from where ({FROM}) and at which "
                      f"clinic ({location})")
    return True, None


def _viewers(name: str) -> list[str]:
    if ROUTES[name].access == "group":
        return ["group_manager"]
    # our manager; the group's manager, switched to our clinic; a sibling practice's desk where it may
    return ["manager", "group_manager"] + (["sibling_desk"] if name in SIBLING_OPEN else [])


STAFF_URLS = [name for name in URL_NAMES if name in ROUTES and ROUTES[name].access in ("staff", "api", "group")]
QUERY = {  # what a person would ask these pages for to see her
    "memberships:home": {"q": "Quixotic"},
    "mirror:reconciliation": {"show": "all"},
    "mirror:reconciliation_csv": {"show": "all"},
}
# Pages that do show her in this world: the check above is only worth something if these name her.
SHOWS_HER = {"memberships:home", "memberships:chart", "memberships:visit", "memberships:reverse", "card_link",
             "mirror:reconciliation", "mirror:reconciliation_csv", "manager:dunning", "records_staff:list",
             "sms_replies:list", "memberships:member_requests", "api:member-detail", "api:member-list"}


@pytest.fixture
def review_world(world):
    """The matrix's world with the reconciliation run finished (its page lists what the last finished
    run found) and the discrepancy carrying her member number, as the engine writes it."""
    from billing.models import Discrepancy, ReconciliationRun

    objects, users = world
    zelda = objects["member"]
    ReconciliationRun.objects.filter(practice=zelda.practice).update(finished_at=timezone.now())
    Discrepancy.objects.filter(member=zelda).update(member_number=zelda.member_number)
    # our front desk opened her chart yesterday: the audit log itself names her
    AuditLog.objects.create(user=users["front_desk"], action="view_chart", member=zelda,
                            created_at=timezone.now() - timedelta(days=1))
    return objects, users


@pytest.mark.parametrize("name", STAFF_URLS)
def test_every_page_showing_a_member_audits_her(review_world, name, caplog):
    """Staff pages, the API and the group's pages, each by who may open it (a sibling practice's desk
    too where it may); and nothing they log names her or her treatments."""
    from tests.support.two_factor import VerifyingClient

    caplog.set_level(logging.DEBUG)
    objects, users = review_world
    member, route = objects["member"], ROUTES[name]
    url = _url(name, route, objects)
    if name in QUERY:
        url += "?" + urlencode(QUERY[name])
    for role in _viewers(name):
        user = users[role]
        if role != "group_manager":         # the group manager works where they chose (the matrix's clinic)
            _at_a_clinic(user, user.staff_profile.practice if role == "sibling_desk" else member.practice)
        client = VerifyingClient()
        _sign_in(client, role, users)
        shown, problem = _check(client, user, url, member, route=route)
        assert problem is None, role
        assert shown or name not in SHOWS_HER or role != "manager", \
            f"{url} was expected to show her: the world no longer has what it lists"
    logged = [found for found in _identifiers(member) + ["HydraFacial", "Product credit"] if found in caplog.text]
    assert logged == [], f"{url} logged {logged}"


def test_the_members_own_page_audits_her_at_her_own_address(world, client):
    """The member's page is audited as a member's own read (no staff user; the row says so)."""
    from portal.me import links

    objects, _ = world
    zelda = objects["member"]
    link = links.send_links(request_id=_link_request(zelda).pk, now=timezone.now())[0]
    client.post(reverse("portal:me:open", args=[link.pk, links.link_token(link)]), REMOTE_ADDR=FROM)
    before = AuditLog.objects.order_by("-id").values_list("id", flat=True).first() or 0
    page = client.get(reverse("portal:me:page"), REMOTE_ADDR=FROM)
    assert page.status_code == 200 and zelda.first_name in page.content.decode()
    rows = list(AuditLog.objects.filter(id__gt=before))
    assert [(r.member_id, r.user_id, r.ip_address) for r in rows] == [(zelda.pk, None, FROM)]


def _link_request(member):
    from portal.me import links
    from portal.models import LinkRequest

    return LinkRequest.objects.create(address=member.email, address_digest=links.address_digest(member.email),
                                      created_at=timezone.now())


# --- the admin: every registered model's list and, where one exists, the page of a row about Zelda ---

def _about(model, objects):
    """A row of `model` about Zelda, if the world has one (by member, membership, the event's member, or
    the inbound event that names her)."""
    from integrations.models import Delivery, InboundEvent

    member, membership = objects["member"], objects["membership"]
    if model is type(member):
        return member
    if model is InboundEvent:
        return InboundEvent.objects.filter(event_id="evt_review_1").first()
    if model is Delivery:
        return Delivery.objects.filter(event__member=member, destination="record", status="failed").first()
    fields = {f.name for f in model._meta.get_fields()}
    for field, value in (("member", member), ("membership", membership), ("event__member", member)):
        if field.split("__")[0] in fields:
            return model._default_manager.filter(**{field: value}).order_by("pk").first()
    return None


ADMIN_MODELS = sorted(admin.site._registry, key=lambda model: model._meta.label)
# Admin pages that show her in this world (the list, or the page of the row about her).
ADMIN_SHOWS_HER = {"memberships.Member", "memberships.Membership", "integrations.InboundEvent", "memberships.AuditLog",
                   "integrations.Delivery", "integrations.RecordObject",
                   "billing.DunningCase", "integrations.RecordException"}


@pytest.mark.parametrize("model", ADMIN_MODELS, ids=lambda model: model._meta.label)
@pytest.mark.parametrize("role", ["manager", "superuser"])
def test_every_admin_page_showing_a_member_audits_her(review_world, model, role, django_user_model):
    from tests.support.two_factor import VerifyingClient, give_authenticator

    objects, users = review_world
    _extra_admin_rows(objects)
    member = objects["member"]
    if role == "superuser":
        user = django_user_model.objects.create_superuser("root-review", "root@example.com", "pw-Root-2026!")
        give_authenticator(user)
        StaffProfile.objects.create(user=user, practice=member.practice)
    else:
        user = users["manager"]
    _at_a_clinic(user, member.practice)
    client = VerifyingClient()
    client.force_login(user)
    info = model._meta.app_label, model._meta.model_name
    urls = [reverse("admin:%s_%s_changelist" % info)]
    row = _about(model, objects)
    if row is not None:
        urls.append(reverse("admin:%s_%s_change" % info, args=[row.pk]))
    checks = [_check(client, user, url, member) for url in urls]
    assert [problem for _, problem in checks if problem] == []
    assert any(shown for shown, _ in checks) or model._meta.label not in ADMIN_SHOWS_HER


def _extra_admin_rows(objects) -> None:
    """What the admin lists besides the matrix's objects: an inbound event naming Zelda as Stripe
    sends her (email, name), a delivery of one of her events that the record refused, the record's
    note we keep for her."""
    from integrations.models import Delivery, InboundEvent, RecordObject

    member, membership = objects["member"], objects["membership"]
    now = timezone.now()
    InboundEvent.objects.create(
        source="stripe", event_id="evt_review_1", event_type="customer.updated", practice=member.practice,
        received_at=now, payload={"id": "evt_review_1", "type": "customer.updated", "data": {"object": {
            "id": "cus_review", "object": "customer", "email": member.email,
            "name": f"{member.first_name} {member.last_name}", "metadata": {"member_id": f"mb_{member.pk}"}}}})
    # the Zenoti guest note we keep up to date for her (what we wrote there, by its id)
    RecordObject.objects.get_or_create(practice=member.practice, member=member, adapter="zenoti", kind="summary",
                                       defaults={"external_id": "note-review-1", "state": {"hash": "0" * 16}})
    # the record refused the chart panel and quoted it back, as a FHIR server's OperationOutcome does
    # (integrations.records.http keeps the first 500 characters of the answer for the manager)
    event = membership.events.order_by("pk").first()
    Delivery.objects.update_or_create(event=event, destination="record", defaults={
        "practice": member.practice, "created_at": now, "next_attempt_at": now, "status": "failed",
        "last_error": f"POST https://ehr.example.com/fhir/Flag: HTTP 422 {{\"issue\": [{{\"diagnostics\": "
                      f"\"Flag.subject.display '{member.first_name} {member.last_name}' does not match\"}}]}}"})
