"""Who may reach whose rows, where the route matrix (tests/security/test_route_matrix.py) does not go:
the admin, for every registered model, and the API with a token.

- A manager of another practice, and a manager of another group, reach none of our practice's rows
  in the admin — not its page, its history or its delete page — and no admin list or add form shows
  them our member or our practice's catalogue (not even in a filter's or a field's choices).
- A member signed in on her own page, and a front desk (no admin rights), get no admin page at all.
- Another practice's API token finds none of our objects."""

from __future__ import annotations

import pytest
from django.contrib import admin
from django.urls import reverse
from django.utils import timezone

from memberships.models import Practice
from tests.security.test_route_matrix import _sign_in, world  # noqa: F401  (world: the matrix's fixture)

OUR_WORDS = ("Quixotic", "Zircon")          # our member's surname; our tier's name (set below)


@pytest.fixture
def our_world(world):
    """The matrix's world, our tier named so no other practice's could be mistaken for it."""
    objects, users = world
    tier = objects["tier"]
    tier.name = "Zircon Glow"
    tier.save(update_fields=["name"])
    return objects, users


def _rows_of_ours(model, objects):
    """Rows of `model` that belong to our practice (at most three)."""
    practice = objects["member"].practice
    fields = {f.name for f in model._meta.get_fields()}
    paths = [("practice", practice), ("member__practice", practice), ("membership__member__practice", practice),
             ("event__practice", practice), ("user__staff_profile__practice", practice)]
    queryset = model._default_manager.all()
    if model is Practice:
        return [practice]
    for path, value in paths:
        if path.split("__")[0] in fields:
            return list(queryset.filter(**{path: value}).order_by("pk")[:3])
    return []


SCOPED_MODELS = sorted((model for model in admin.site._registry
                        if model._meta.app_label in {"memberships", "billing", "integrations", "portal"}),
                       key=lambda model: model._meta.label)


@pytest.mark.parametrize("model", SCOPED_MODELS, ids=lambda model: model._meta.label)
@pytest.mark.parametrize("role", ["other_manager", "other_group_manager"])
def test_another_practices_manager_reaches_none_of_our_rows_in_the_admin(our_world, model, role):
    from tests.support.two_factor import VerifyingClient

    objects, users = our_world
    client = VerifyingClient()
    client.force_login(users[role])
    info = model._meta.app_label, model._meta.model_name
    wrong = []
    listing = client.get(reverse("admin:%s_%s_changelist" % info))
    if listing.status_code == 200 and any(word in listing.content.decode() for word in OUR_WORDS):
        wrong.append(f"the list of {model._meta.label} shows our practice's rows or catalogue")
    adding = client.get(reverse("admin:%s_%s_add" % info))
    if adding.status_code == 200 and any(word in adding.content.decode() for word in OUR_WORDS):
        wrong.append(f"the add form of {model._meta.label} offers our practice's rows or catalogue")
    rows = _rows_of_ours(model, objects)
    for row in rows:
        for view in ("change", "history", "delete"):
            url = reverse(f"admin:%s_%s_{view}" % info, args=[row.pk])
            response = client.get(url)
            if response.status_code == 200:
                wrong.append(f"{url} opens our {model._meta.verbose_name} {row.pk}")
    assert wrong == []


def test_our_manager_sees_our_rows_in_the_same_admin(our_world):
    """The check above is worth something: our own manager does see them."""
    from tests.support.two_factor import VerifyingClient

    objects, users = our_world
    client = VerifyingClient()
    client.force_login(users["manager"])
    assert "Quixotic" in client.get(reverse("admin:memberships_member_changelist")).content.decode()
    assert client.get(reverse("admin:memberships_member_change", args=[objects["member"].pk])).status_code == 200
    assert "Zircon" in client.get(reverse("admin:memberships_tier_changelist")).content.decode()


@pytest.mark.parametrize("role", ["member", "front_desk", "clinician", "sibling_desk"])
def test_no_admin_page_for_a_member_session_or_a_desk(our_world, role):
    from tests.support.two_factor import VerifyingClient

    objects, users = our_world
    client = VerifyingClient()
    _sign_in(client, role, users)
    for url in (reverse("admin:index"), reverse("admin:memberships_member_changelist"),
                reverse("admin:memberships_member_change", args=[objects["member"].pk])):
        response = client.get(url)
        assert response.status_code in (302, 403), (role, url, response.status_code)
        assert "Quixotic" not in response.content.decode()
        if response.status_code == 302:      # the admin's login, which sends on to the staff login
            assert response["Location"].startswith((reverse("admin:login"), reverse("memberships:login"))), \
                (role, url, response["Location"])


def test_another_practices_api_token_finds_none_of_our_objects(our_world, client):
    from memberships.auth import issue_api_token
    from memberships.services import Actor

    objects, users = our_world
    theirs = users["other_manager"]
    _, key = issue_api_token(user=theirs, name="their token", actor=Actor.system(), now=timezone.now())
    auth = {"HTTP_AUTHORIZATION": f"Token {key}"}
    for name, pk in [("api:member-detail", objects["member"].pk), ("api:membership-detail", objects["membership"].pk),
                     ("api:membership-timeline", objects["membership"].pk),
                     ("api:membership-holds", objects["membership"].pk), ("api:hold-detail", objects["reservation"].pk),
                     ("api:tier-detail", objects["tier"].pk), ("api:service-detail", objects["service"].pk)]:
        assert client.get(reverse(name, kwargs={"pk": pk}), **auth).status_code == 404, name
    for name in ("api:member-list", "api:tier-list", "api:service-list"):
        response = client.get(reverse(name), {"q": "Quixotic"} if name == "api:member-list" else {}, **auth)
        assert response.status_code == 200, name
        assert not any(word in response.content.decode() for word in OUR_WORDS), name
    # …while the same token reads its own practice's list
    assert client.get(reverse("api:tier-list"), **auth).json()


THEIR_WORDS = ("Obsidian", "Outsider", "Elsewhere Med Spa")


@pytest.mark.parametrize("model", SCOPED_MODELS, ids=lambda model: model._meta.label)
def test_our_managers_admin_forms_offer_nothing_of_another_practice(our_world, model):
    """The other way round: our manager's lists, add forms and our rows' pages never offer another
    practice's member, tier or name (a choice in a drop-down is as visible as a row)."""
    from tests.factories import MemberFactory, active_membership
    from tests.support.two_factor import VerifyingClient

    objects, users = our_world
    other = Practice.objects.get(slug="elsewhere")
    their_tier = other.tiers.get()
    their_tier.name = "Obsidian Glow"
    their_tier.save(update_fields=["name"])
    active_membership(tier=their_tier, member=MemberFactory(practice=other, first_name="Yolanda", last_name="Outsider"))
    client = VerifyingClient()
    client.force_login(users["manager"])
    info = model._meta.app_label, model._meta.model_name
    urls = [reverse("admin:%s_%s_changelist" % info), reverse("admin:%s_%s_add" % info)]
    urls += [reverse("admin:%s_%s_change" % info, args=[row.pk]) for row in _rows_of_ours(model, objects)]
    shown = []
    for url in urls:
        response = client.get(url)
        if response.status_code == 200:
            shown += [(url, word) for word in THEIR_WORDS if word in response.content.decode()]
    assert shown == []


def test_a_group_manager_sees_only_their_own_groups_practices(our_world):
    """The group dashboard, its CSV and a refresh of another group's manager name only their group's
    practices and figures; ours (Glow Aesthetics, Glow East) never appear there, and ours see theirs."""
    from tests.support.two_factor import VerifyingClient

    _, users = our_world
    pages = {}
    for role in ("group_manager", "other_group_manager"):
        client = VerifyingClient()
        client.force_login(users[role])
        assert client.post(reverse("group:refresh")).status_code == 302
        pages[role] = (client.get(reverse("group:dashboard")).content.decode()
                       + client.get(reverse("group:export")).content.decode())
    assert "Glow East" in pages["group_manager"] and "Elsewhere Med Spa" not in pages["group_manager"]
    assert "Elsewhere Med Spa" in pages["other_group_manager"]
    assert "Glow East" not in pages["other_group_manager"] and "Glow Aesthetics" not in pages["other_group_manager"]


def test_the_admins_audit_log_follows_the_member_not_where_the_looker_works_now(our_world):
    """A manager's audit log lists every look at their practice's members — by a sibling practice's
    desk, by the member on her own page — and their own staff's rows that name no member; a desk
    who has moved to another practice takes none of our members' rows there."""
    from memberships.models import AuditLog, StaffProfile
    from tests.support.two_factor import VerifyingClient

    objects, users = our_world
    zelda, now = objects["member"], timezone.now()
    other = Practice.objects.get(slug="elsewhere")
    looks = [AuditLog.objects.create(user=users[role], action="view_chart", member=zelda, created_at=now)
             for role in ("front_desk", "sibling_desk")]
    looks.append(AuditLog.objects.create(user=None, action="member_page_view", member=zelda, created_at=now))
    theirs = AuditLog.objects.create(user=users["other_manager"], action="automation_stage_changed", created_at=now)
    StaffProfile.objects.filter(user=users["front_desk"]).update(practice=other, location=None)   # she moved

    def listed(role):
        client = VerifyingClient()
        client.force_login(users[role])
        page = client.get(reverse("admin:memberships_auditlog_changelist"))
        assert page.status_code == 200
        return {row.pk for row in page.context["cl"].result_list}, page.content.decode()

    ours, _ = listed("manager")
    assert {row.pk for row in looks} <= ours and theirs.pk not in ours
    elsewhere, text = listed("other_manager")
    assert theirs.pk in elsewhere and not elsewhere & {row.pk for row in looks} and "Quixotic" not in text
