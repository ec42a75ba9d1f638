"""Every URL × every role × another practice's objects (issue 19): generated from the URL conf, so a
new page that nobody classified here fails — and one classified with the wrong role fails too.

Roles: anonymous, clinician, front desk, manager, a manager of another practice (all
permissions, wrong practice), and a member of our practice signed in on their own page (a member
session: no staff rights). Each route is classified below by who may use it: its permission
(`staff`), the API (`api`), a signed webhook, a public page or a step of signing in. Objects in a
URL are the first practice's (a member, an entry, a dunning case…): the other practice's manager
must get 404 for every one of them, and see none of our member's data on the pages without one.

Expected: anonymous → the login page (302; 401/403 for the API); a role without the permission →
403; with it → the page (GET 200) or the action's answer (POST: never 401/403/404 nor 5xx).
A member session is no staff login: every staff page sends it to the staff login (or 403/404),
the API refuses it; on the member's own pages (`member=`: what a member session gets there) it is
the signed-in member's page and no one else's, and no answer anywhere shows another member
(Zelda Quixotic, the world's member) — a staff role on a member page is sent to "send me a link".
A front desk of a sibling practice (another practice of our organization) finds our members and
opens their visit page (the chart panel and redeeming), or the API's member, membership and redemption
(`SIBLING_OPEN`); every other URL naming our
objects is 404 for it, and no other page shows it our member. Another role joins by a line in ROLES, a way to sign it in (`_sign_in`) and its expectation
(`_expected`). An entry for a URL that is not in the URL conf (yet) is simply not requested."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta

import pytest
from django.urls import URLPattern, URLResolver, get_resolver, reverse
from django.utils import timezone

from memberships.roles import CLINICIAN, FRONT_DESK, MANAGER
from tests.factories import MemberFactory, PracticeFactory, active_membership, glow_tier, staff_user

ROLES = ("anonymous", "clinician", "front_desk", "manager", "other_manager", "member")
ROLES += ("sibling_desk",)          # a front desk of another practice of our group
# A group manager of our group (signed in at the sibling practice, then switched to our clinic) and one
# of another group: the first may do what our manager does, and open the group dashboard; the second
# is another practice's manager for our objects (404), and sees only their own group's dashboard.
ROLES += ("group_manager", "other_group_manager")
GROUP_MANAGERS = {"group_manager", "other_group_manager"}
SIBLING_OPEN = ("memberships:visit", "memberships:visit_redeem")
# … and the API's way to the same: the member, the membership (balances, the tier's rule) and redeeming.
SIBLING_OPEN += ("api:member-detail", "api:membership-detail", "api:redemption-create")
STAFF_ROLES = {"clinician", "front_desk", "manager", "other_manager", "sibling_desk"}
STAFF_ROLES |= GROUP_MANAGERS
PERMS = {  # which of our roles hold each permission (README, "Staff pages")
    "view_chart": {"clinician", "front_desk", "manager"},
    "redeem_entitlement": {"clinician", "front_desk", "manager"},
    "manage_membership": {"front_desk", "manager"},
    "view_dashboard": {"manager"},
}


@dataclass(frozen=True)
class Route:
    access: str                     # staff | api | webhook | public | signin
    perm: str = ""                  # staff/api: the permission that opens it
    method: str = "GET"
    kwargs: dict = field(default_factory=dict)   # URL arguments: names of objects in `world`, or literals
    ok: frozenset = frozenset()     # public/signin/webhook: the statuses every role may get
    data: dict = field(default_factory=dict)     # a POST's form (a valid one reaches the object lookup)
    member: frozenset | None = None  # a member's own page: what the signed-in member gets there


def R(access, perm="", method="GET", ok=(), data=None, member=None, **kwargs):
    return Route(access, perm, method, kwargs, frozenset(ok), data or {},
                 frozenset(member) if member is not None else None)


SIGNED = (400, 401, 403, 404)       # a webhook without its signature: refused, never a login page
ROUTES: dict[str, Route] = {
    # public: no login, no member data
    "healthz": R("public", ok=(200, 503)),
    "card_update": R("public", ok=(404,), token="not-a-token"),
    "card_update_done": R("public", ok=(404,), token="not-a-token"),
    # a Square practice's card page (Square's Web Payments SDK): the signed link is the key
    "square_card:page": R("public", ok=(404,), token="not-a-token"),
    "schema": R("public", ok=(200, 302, 401, 403)),
    "api-docs": R("public", ok=(200, 302, 401, 403)),
    "api:not-found": R("public", ok=(401, 403, 404)),
    # the member's own page: a member session only (a staff login is none), else "send me a link";
    # `member=`: what the signed-in member gets (an empty request form is refused; no card on file yet)
    "portal:me:page": R("public", ok=(302,), member=(200,)),
    "portal:me:request": R("public", method="POST", ok=(302,), member=(400,)),
    "portal:me:card": R("public", method="POST", ok=(302,), member=(409,)),
    "portal:me:link": R("public", ok=(200,), member=(200,)),
    "portal:me:link_expired": R("public", ok=(200, 410), member=(200,)),
    "portal:me:open": R("public", ok=(404,), member=(404,), link_id="member_link", token="not-a-token"),
    "portal:me:sign_out": R("public", method="POST", ok=(200, 302), member=(302,)),
    # joining online: the practice's public page and the pages the processor's hosted page returns to
    "portal:join:page": R("public", ok=(200,), practice_slug="glow"),
    "portal:join:done": R("public", ok=(404,), practice_slug="glow", join_ref="not-a-join"),
    "portal:join:cancelled": R("public", ok=(200,), practice_slug="glow", join_ref="not-a-join"),
    # signed webhooks
    "records:webhook": R("webhook", method="POST", ok=SIGNED, adapter="webhook"),
    "records:webhook-practice": R("webhook", method="POST", ok=SIGNED, adapter="webhook", practice="glow"),
    "records:webhook-practice-bare": R("webhook", method="POST", ok=SIGNED, adapter="webhook", practice="glow"),
    "records:webhook-resource": R("webhook", method="POST", ok=SIGNED, adapter="fhir", practice="glow",
                                  rest="Procedure/1"),
    "records:webhook-location": R("webhook", method="POST", ok=SIGNED, adapter="webhook", practice="glow",
                                  location="clinic"),
    "records:webhook-location-bare": R("webhook", method="POST", ok=SIGNED, adapter="webhook", practice="glow",
                                       location="clinic"),
    "records:webhook-location-resource": R("webhook", method="POST", ok=SIGNED, adapter="fhir", practice="glow",
                                           location="clinic", rest="Procedure/1"),
    "twilio_inbound": R("webhook", method="POST", ok=SIGNED),
    "twilio_status": R("webhook", method="POST", ok=SIGNED),
    "integrations:stripe-webhook": R("webhook", method="POST", ok=SIGNED),
    "integrations:square-webhook": R("webhook", method="POST", ok=SIGNED),
    # signing in
    "memberships:login": R("signin", ok=(200, 302)),
    "memberships:logout": R("signin", method="POST", ok=(200, 302)),
    "memberships:two_factor_verify": R("signin", ok=(200, 302)),
    "memberships:two_factor_setup": R("signin", ok=(200, 302)),
    # where I work today: after signing in, and from the header (tests/groups/test_location_choice.py)
    "memberships:choose_location": R("signin", ok=(200, 302)),
    # the group dashboard and its CSV: group managers only, 404 for every other signed-in role
    "group:dashboard": R("group", "view_group_dashboard"),
    "group:export": R("group", "view_group_dashboard"),
    "group:refresh": R("group", "view_group_dashboard", method="POST", ok=(302,)),
    # the chart side
    "memberships:home": R("staff", "view_chart"),
    "memberships:chart": R("staff", "view_chart", member_id="member"),
    "memberships:redeem": R("staff", "redeem_entitlement", "POST", member_id="member"),
    "memberships:reverse": R("staff", "redeem_entitlement", member_id="member", entry_id="entry"),
    "memberships:enroll_new": R("staff", "manage_membership"),
    "memberships:enroll": R("staff", "manage_membership", member_id="member"),
    "memberships:change_tier": R("staff", "manage_membership", member_id="member"),
    "memberships:pause": R("staff", "manage_membership", member_id="member"),
    "memberships:resume": R("staff", "manage_membership", member_id="member"),
    "memberships:cancel": R("staff", "manage_membership", member_id="member"),
    "memberships:who_looked": R("staff", "view_dashboard", member_id="member"),
    "memberships:home_location": R("staff", "manage_membership", member_id="member"),
    # a member of the group at another practice's desk: the chart panel and redeeming (SIBLING_OPEN)
    "memberships:visit": R("staff", "view_chart", member_id="member"),
    "memberships:visit_redeem": R("staff", "redeem_entitlement", "POST", member_id="member"),
    "memberships:member_requests": R("staff", "manage_membership"),
    "memberships:member_request_decide": R("staff", "manage_membership", "POST", request_id="member_request",
                                           data={"decision": "decline", "decline_reason": "matrix"}),
    "card_link": R("staff", "manage_membership", member_id="member"),
    "records_staff:list": R("staff", "manage_membership"),
    "records_staff:resolve": R("staff", "manage_membership", "POST", exception_id="exception"),
    "records_staff:apply": R("staff", "manage_membership", "POST", exception_id="exception"),
    "records_staff:dismiss": R("staff", "manage_membership", "POST", exception_id="exception"),
    "sms_replies:list": R("staff", "manage_membership"),
    "sms_replies:clear": R("staff", "manage_membership", "POST", hold_id="sms_hold"),
    # manager pages
    "manager:dashboard": R("staff", "view_dashboard"),
    "manager:dunning": R("staff", "view_dashboard"),
    "manager:mark_contacted": R("staff", "view_dashboard", "POST", case_id="case"),
    "manager:resend_card_link": R("staff", "view_dashboard", "POST", case_id="case"),
    "dunning_policy": R("staff", "view_dashboard"),
    "mirror:import_upload": R("staff", "view_dashboard"),
    "mirror:import_detail": R("staff", "view_dashboard", batch_id="batch"),
    "mirror:import_progress": R("staff", "view_dashboard", batch_id="batch"),
    "mirror:import_confirm": R("staff", "view_dashboard", "POST", batch_id="batch"),
    "mirror:import_columns": R("staff", "view_dashboard", "POST", batch_id="batch"),
    "mirror:reconciliation": R("staff", "view_dashboard"),
    "mirror:reconciliation_run": R("staff", "view_dashboard", "POST"),
    "mirror:reconciliation_csv": R("staff", "view_dashboard"),
    "mirror:discrepancy_resolve": R("staff", "view_dashboard", "POST", discrepancy_id="discrepancy"),
    "mirror:rollout": R("staff", "view_dashboard"),
    "mirror:rollout_stage": R("staff", "view_dashboard", "POST"),
    "mirror:rollout_location_stage": R("staff", "view_dashboard", "POST", location_id="clinic",
                                       data={"stage": "alerts", "confirm": "1"}),
    # the API (session auth here; tokens are tested with the API)
    "api:member-list": R("api", "view_chart"),
    "api:member-detail": R("api", "view_chart", pk="member"),
    "api:membership-detail": R("api", "view_chart", pk="membership"),
    "api:membership-timeline": R("api", "view_chart", pk="membership"),
    "api:membership-holds": R("api", "view_chart", pk="membership"),
    "api:redemption-create": R("api", "redeem_entitlement", "POST", pk="membership"),
    "api:redemption-reverse": R("api", "redeem_entitlement", "POST", pk="entry"),
    "api:hold-detail": R("api", "view_chart", pk="reservation"),
    "api:hold-commit": R("api", "redeem_entitlement", "POST", pk="reservation"),
    "api:hold-release": R("api", "redeem_entitlement", "POST", pk="reservation"),
    "api:tier-list": R("api", "view_chart"),
    "api:tier-detail": R("api", "view_chart", pk="tier"),
    "api:service-list": R("api", "view_chart"),
    "api:service-detail": R("api", "view_chart", pk="service"),
}


def _patterns(resolver, namespace=""):
    for entry in resolver.url_patterns:
        if isinstance(entry, URLResolver):
            if str(entry.pattern).startswith("admin/"):
                continue  # the admin site: tested with the admin (django-otp's site, practice-scoped admins)
            inner = f"{namespace}:{entry.namespace}" if namespace and entry.namespace else entry.namespace or namespace
            yield from _patterns(entry, inner)
        elif isinstance(entry, URLPattern):
            yield f"{namespace}:{entry.name}" if namespace else (entry.name or str(entry.pattern))


URL_NAMES = sorted(set(_patterns(get_resolver())))


def test_every_url_is_classified():
    missing = [name for name in URL_NAMES if name not in ROUTES]
    assert not missing, (f"Classify these URLs in tests/security/test_route_matrix.py (ROUTES: who may open "
                         f"them, with which objects): {missing}")


# --- the world: our practice with one of everything, and another practice with its manager ----------

@pytest.fixture
def world(db):
    from billing.models import Discrepancy, DiscrepancyKind, ImportBatch, ImportStatus, ReconciliationRun
    from integrations.models import RecordException, RecordExceptionKind, SmsHold
    from memberships import services
    from tests.billing.conftest import fail

    now = timezone.now()
    ours = PracticeFactory(slug="glow", name="Glow Aesthetics")
    tier, facial, credit = glow_tier(ours)
    membership = active_membership(tier=tier, now=now - timedelta(days=3))
    member = membership.member
    member.first_name, member.last_name, member.phone = "Zelda", "Quixotic", "+14155550199"
    member.save(update_fields=["first_name", "last_name", "phone"])
    actor = services.Actor.system()
    entry = services.redeem_entitlement(membership=membership, service=credit, quantity=100, actor=actor,
                                        idempotency_key="matrix-redeem", now=now)
    reservation = services.reserve_entitlement(membership=membership, service=facial, actor=actor,
                                               idempotency_key="matrix-hold", now=now)
    run = ReconciliationRun.objects.create(practice=ours, started_at=now)
    objects = {
        "member": member, "membership": membership, "entry": entry, "tier": tier, "service": facial,
        "reservation": getattr(reservation, "reservation", reservation),
        "case": fail(membership, invoice="in_matrix", now=now),
        "exception": RecordException.objects.create(practice=ours, member=member, kind=RecordExceptionKind.REVIEW,
                                                    event_type="treatment.completed", appointment_ref="A-matrix",
                                                    detail="held", created_at=now),
        "sms_hold": SmsHold.objects.create(practice=ours, member=member, text="wrong number", reason="WRONG NUMBER",
                                           opened_at=now),
        "batch": ImportBatch.objects.create(practice=ours, file_name="members.csv", sha256="0" * 64, created_at=now,
                                            dry_run=True, status=ImportStatus.VALIDATED,
                                            report={"suggestions": [{"header": "Facials left"}]}),
        "discrepancy": Discrepancy.objects.create(practice=ours, fingerprint="f" * 64, member=member,
                                                  kind=DiscrepancyKind.MISSING, message="missing at the processor",
                                                  first_seen_run=run, last_seen_run=run, first_seen_at=now,
                                                  last_seen_at=now),
    }
    objects.update(_member_request(ours, membership, now))
    objects["member_link"] = _link(member, now)              # Zelda's own sign-in link (its token unknown)
    objects["clinic"] = ours.locations.create(name="Matrix clinic")   # a location of ours (its rollout stage)
    other = PracticeFactory(slug="elsewhere", name="Elsewhere Med Spa")
    glow_tier(other)
    bob = MemberFactory(practice=ours, first_name="Bob", last_name="Neighbour", email="bob@example.com",
                        phone="+14155550142")
    active_membership(tier=tier, member=bob, now=now - timedelta(days=3))
    users = {"clinician": staff_user(CLINICIAN, ours), "front_desk": staff_user(FRONT_DESK, ours),
             "manager": staff_user(MANAGER, ours), "other_manager": staff_user(MANAGER, other),
             "member": bob}                                  # signed in on his own page: no staff rights
    users["sibling_desk"] = _sibling_desk(ours)
    users.update(_group_managers(ours, other))
    return objects, users


def _sibling_desk(ours):
    """A front desk of another practice of our organization (ours made a group when it is not one)."""
    from memberships.models import Organization

    if ours.organization_id is None:
        ours.organization = Organization.objects.create(name="Glow Group", slug="glow-group")
        ours.save(update_fields=["organization"])
    sibling = PracticeFactory(slug="glow-east", name="Glow East", organization=ours.organization)
    return staff_user(FRONT_DESK, sibling)


def _group_managers(ours, other) -> dict:
    """Our group's manager, signed in at the sibling practice and switched to our clinic through the
    location page's door (so our practice's pages are theirs now); another group's manager."""
    from django.contrib.auth.models import Group

    from memberships.models import Organization, Practice, StaffProfile
    from memberships.roles import GROUP_MANAGER
    from memberships.services import Actor
    from memberships.services.locations import choose_location

    other.organization = Organization.objects.create(name="Elsewhere Group", slug="elsewhere-group")
    other.save(update_fields=["organization"])
    users = {}
    for role, practice in (("group_manager", Practice.objects.get(slug="glow-east")),
                           ("other_group_manager", other)):
        user = staff_user(MANAGER, practice, username=role)
        user.groups.set([Group.objects.get(name=GROUP_MANAGER)])
        StaffProfile.objects.filter(user=user).update(organization=practice.organization)
        users[role] = type(user).objects.get(pk=user.pk)
    owner, clinic = users["group_manager"], ours.locations.create(name="Group matrix clinic")
    choose_location(user=owner, place_key=f"l{clinic.pk}", actor=Actor.staff(owner), now=timezone.now())
    assert StaffProfile.objects.get(user=owner).practice_id == ours.pk
    return users


def _sibling_open(route: Route) -> bool:
    return any(route is ROUTES.get(name) for name in SIBLING_OPEN)


def _link(member, now):
    """A sign-in link to `member`'s page, as "send me a link" makes it (the queued half)."""
    from portal.me import links
    from portal.models import LinkRequest

    request = LinkRequest.objects.create(address=member.email, address_digest=links.address_digest(member.email),
                                         created_at=now)
    return links.send_links(request_id=request.pk, now=now)[0]


def _sign_in(client, role: str, users: dict) -> None:
    """The session `role` has after signing in: a staff login (a manager's with the second factor
    passed), or a member's own page opened with a link sent to him."""
    from portal.me import links

    if role == "anonymous":
        return
    if role == "member":
        link = _link(users["member"], timezone.now())
        response = client.post(reverse("portal:me:open", args=[link.pk, links.link_token(link)]))
        assert response.status_code == 302 and response["Location"] == reverse("portal:me:page")
        return
    client.force_login(users[role])


def _member_request(practice, membership, now) -> dict:
    """A member's pending cancellation request, where the member's requests exist."""
    try:
        from memberships.models import MemberRequest
    except ImportError:
        return {}
    return {"member_request": MemberRequest.objects.create(
        practice=practice, member=membership.member, membership=membership, kind="cancel", reason="other",
        idempotency_key="matrix-request", created_at=now)}


def _url(name: str, route: Route, objects: dict) -> str:
    kwargs = {key: (objects[value].pk if value in objects else value) for key, value in route.kwargs.items()}
    return reverse(name, kwargs=kwargs)


def _expected(route: Route, role: str) -> set[int]:
    if route.access == "group":                    # the group's pages: a group manager's own group; else 404
        if role in ("anonymous", "member"):
            return {302}
        return (set(route.ok) or {200}) if role in GROUP_MANAGERS else {404}   # ok: a POST's redirect
    if role == "group_manager":
        role = "manager"
    if role == "member" and route.member is not None:
        return set(route.member)
    if role == "member" and route.access == "staff":
        return {302, 403, 404}                     # the staff login (checked below), never the page
    if role == "member" and route.access == "api":
        return {401, 403}                          # no staff user behind a member session
    if route.access in ("public", "webhook", "signin"):
        return set(route.ok)
    if role == "anonymous":
        return {302} if route.access == "staff" else {401, 403}
    if role in ("other_manager", "other_group_manager"):
        return {404} if route.kwargs else ({200} if route.method == "GET" else {200, 302, 400, 409, 503})
    if role == "sibling_desk":                     # a front desk, of another practice of the group
        if "front_desk" not in PERMS[route.perm]:
            return {403}
        if route.kwargs and not _sibling_open(route):
            return {404}
        role = "front_desk"
    if role not in PERMS[route.perm]:
        return {403}
    if route.method == "GET":
        return {200}
    return {200, 201, 302, 400, 409, 503}


def _answer(client, name: str, route: Route, role: str, objects: dict) -> str | None:
    """What is wrong with the answer `role` gets, or None."""
    url = _url(name, route, objects)
    if route.method == "GET":
        response = client.get(url)
    elif route.access == "api":
        response = client.post(url, route.data, content_type="application/json")
    else:
        response = client.post(url, route.data)
    expected = _expected(route, role)
    if response.status_code not in expected:
        return f"{route.method} {url} as {role}: {response.status_code}, expected one of {sorted(expected)}"
    if route.access in ("staff", "group") and role in ("anonymous", "member") and response.status_code == 302 and \
            not response["Location"].startswith(reverse("memberships:login")):
        return f"{url} as {role}: redirected to {response['Location']}, not to the login page"
    if route.member is not None and role in STAFF_ROLES and response.status_code == 302 and \
            not response["Location"].startswith(reverse("portal:me:link")):
        return f"{url} as {role}: redirected to {response['Location']}, not to 'send me a link'"
    body = response.content.decode(errors="replace")
    if role == "sibling_desk" and response.status_code == 200 and not _sibling_open(route) and \
            any(leak in body for leak in ("Quixotic", "+14155550199", "4155550199", "555-0199")):
        return f"{url} shows a sibling practice's member to {role} outside the visit page"
    if (role == "member" or role in ("other_manager", "other_group_manager") and response.status_code == 200) and \
            any(leak in body for leak in ("Quixotic", "+14155550199", "4155550199", "555-0199")):
        return f"{url} shows another {'practice' if role != 'member' else 'member'}'s member to {role}"
    if role == "member" and name == "portal:me:page" and "Hello, Bob" not in body:
        return f"{url} as a member: not the signed-in member's own page"
    return None


@pytest.mark.parametrize("name", [name for name in URL_NAMES if name in ROUTES])
def test_route_answers_each_role_as_classified(client, world, name):
    """One route, every role in turn, each with a session of its own as the sign-in gives it (the
    shared client: a manager's with the second factor passed)."""
    from tests.support.two_factor import VerifyingClient

    objects, users = world
    route = ROUTES[name]
    wrong = []
    for role in ROLES:
        client = VerifyingClient()
        _sign_in(client, role, users)
        wrong.append(_answer(client, name, route, role, objects))
    assert [w for w in wrong if w] == []
