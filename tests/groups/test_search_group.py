"""The member search across a group: a desk finds members of every practice of its organization
(each shown with their home location, a sibling's linked to its visit page), never another group's;
a practice on its own searches only itself. On PostgreSQL a name fragment is found anywhere in the
name through the trigram index, exact and prefix matches first; SQLite keeps the prefix search."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from memberships import selectors
from memberships.models import AuditLog
from tests.factories import MemberFactory, active_membership

from .redeem_world import build, signed_in, visit_url

pytestmark = pytest.mark.django_db


@pytest.fixture
def world(db):
    world = build()
    # the same name in another group, and a member of Bloom itself
    twin = MemberFactory(practice=world.elsewhere, first_name="Ana", last_name="Garcia", home_location=world.far_away)
    bloom_member = MemberFactory(practice=world.bloom, first_name="Marta", last_name="Garcialopez",
                                 home_location=world.harbor)
    return world, twin, bloom_member


def _search(client, q):
    response = client.get(reverse("memberships:home"), {"q": q})
    assert response.status_code == 200
    return response


def test_a_sibling_desk_finds_a_group_member_by_name_not_another_groups(world):
    world, twin, _ = world
    harbor = signed_in(world.harbor_desk)
    for q in ("Garc", "ana garcia", "Ana"):
        found = [m.pk for m, _ in _search(harbor, q).context["results"]]
        assert world.ana.pk in found and twin.pk not in found, q
    body = _search(harbor, "ana gar").content.decode()
    assert f'href="{visit_url(world.ana)}"' in body                       # a sibling's member: the visit page
    assert '<td data-testid="member-location">Pasadena <span class="muted small">Glow Aesthetics</span></td>' in body
    # every member shown is audited, with the desk's location
    assert AuditLog.objects.filter(action="search_members", member=world.ana, location=world.harbor).exists()
    assert not AuditLog.objects.filter(member=twin).exists()


def test_a_group_member_of_the_desks_own_practice_links_to_the_full_chart(world):
    world, _, bloom_member = world
    body = _search(signed_in(world.harbor_desk), "Marta").content.decode()
    assert f'href="{reverse("memberships:chart", args=[bloom_member.pk])}"' in body
    assert 'data-testid="member-location">Harbor' in body


def test_member_number_email_and_phone_find_a_sibling_member_exactly(world):
    world, twin, _ = world
    harbor = signed_in(world.harbor_desk)
    for q in (world.ana.member_number, "ANA.GARCIA@example.com", "(415) 555-0123"):
        assert [m.pk for m, _ in _search(harbor, q).context["results"]] == [world.ana.pk], q


def test_go_jumps_to_the_visit_page_of_a_single_sibling_match(world):
    world, _, _ = world
    response = signed_in(world.harbor_desk).get(reverse("memberships:home"), {"q": world.ana.email, "go": "1"})
    assert response.status_code == 302 and response["Location"] == visit_url(world.ana)


def test_a_practice_on_its_own_searches_only_itself_and_shows_no_location_column(world):
    world, twin, _ = world
    world.elsewhere.organization = None
    world.elsewhere.save(update_fields=["organization"])
    response = _search(signed_in(world.elsewhere_desk), "Garcia")
    assert [m.pk for m, _ in response.context["results"]] == [twin.pk]
    assert "member-location" not in response.content.decode()
    assert response.context["in_group"] is False


def test_the_selector_searches_the_practices_it_is_given(world):
    world, twin, bloom_member = world
    ids = selectors.searchable_practice_ids(world.harbor_desk)
    assert sorted(ids) == sorted([world.glow.pk, world.bloom.pk])
    found = {m.pk for m in selectors.search_members(practice_ids=ids, query="garcia")}
    assert world.ana.pk in found and twin.pk not in found
    assert {m.pk for m in selectors.search_members(practice_id=world.bloom.pk, query="marta")} == {bloom_member.pk}


@pytest.mark.postgres
def test_postgres_finds_a_fragment_anywhere_exact_and_prefix_first(world):
    world, twin, bloom_member = world
    mariana = MemberFactory(practice=world.glow, first_name="Mariana", last_name="Lopez")
    active_membership(tier=world.tier, member=mariana)
    harbor = signed_in(world.harbor_desk)
    found = [m.pk for m, _ in _search(harbor, "ana").context["results"]]
    assert found[0] == world.ana.pk and mariana.pk in found and twin.pk not in found
    # "arcia" is in the middle of Garcia and of Garcialopez: not a prefix, found by the trigram index
    found = [m.pk for m, _ in _search(harbor, "arcia").context["results"]]
    assert set(found) == {world.ana.pk, bloom_member.pk}
    # an exact full name before a longer name it starts
    found = [m.pk for m, _ in _search(harbor, "marta garcialopez").context["results"]]
    assert found == [bloom_member.pk]


@pytest.mark.postgres
def test_postgres_name_search_uses_the_trigram_index(world):
    """The statement that picks the best matches reads the trigram index (with sequential scans off:
    on a few members the planner rightly reads the table), and reads those members by id in the same
    statement."""
    world, _, _ = world
    with CaptureQueriesContext(connection) as ctx:
        found = list(selectors.search_members(practice_ids=None, query="garci"))
    assert world.ana.pk in {m.pk for m in found}
    assert len(ctx.captured_queries) == 1
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")
        cursor.execute("EXPLAIN " + ctx.captured_queries[0]["sql"])
        plan = "\n".join(row[0] for row in cursor.fetchall())
    assert "member_search_name_trgm" in plan, plan


@pytest.mark.postgres
def test_postgres_a_common_fragment_keeps_every_prefix_match_first(world, monkeypatch):
    """With more names holding the fragment than the sample reads, the exact and prefix matches are
    all there, first; the others fill the page from the sample."""
    world, _, bloom_member = world
    monkeypatch.setattr(selectors, "FRAGMENT_SAMPLE", 1)
    inside = [MemberFactory(practice=world.bloom, first_name="Zed", last_name=f"Agarcia{n}") for n in range(4)]
    found = [m.pk for m in selectors.search_members(practice_ids=[world.glow.pk, world.bloom.pk], query="garcia")]
    assert found[:2] == [world.ana.pk, bloom_member.pk]           # Garcia, Garcialopez: prefix matches
    assert len(found) <= 3 and set(found[2:]) <= {m.pk for m in inside}   # one of the sample, at most
    api = {m.pk for m in selectors.search_members(practice_ids=[world.glow.pk, world.bloom.pk], query="garcia",
                                                 limit=None)}
    assert api == {world.ana.pk, bloom_member.pk, *(m.pk for m in inside)}     # no limit: every match


def test_sqlite_keeps_the_prefix_search(world):
    """Off PostgreSQL a fragment inside a name finds nothing (there is no trigram index to find it)."""
    if connection.vendor == "postgresql":
        pytest.skip("PostgreSQL searches fragments (test above)")
    world, _, _ = world
    assert _search(signed_in(world.harbor_desk), "arcia").context["results"] == []
