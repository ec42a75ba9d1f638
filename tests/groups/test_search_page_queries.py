"""The search page's cost does not grow with what it finds: the same number of statements for 2
members as for 25 (members of several practices of the group, each with a membership), and the
audit rows of all of them written in one INSERT."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from memberships.models import AuditLog
from tests.factories import MemberFactory, active_membership, glow_tier

from .redeem_world import build, signed_in

pytestmark = pytest.mark.django_db


def _page(client, q):
    with CaptureQueriesContext(connection) as ctx:
        response = client.get(reverse("memberships:home"), {"q": q})
    assert response.status_code == 200
    return response, [query["sql"] for query in ctx.captured_queries]


def test_the_search_page_runs_as_many_statements_for_25_members_as_for_2(db):
    world = build()
    places = [(world.bloom, world.harbor, glow_tier(world.bloom)[0]), (world.glow, world.pasadena, world.tier)]
    for n in range(25):
        practice, location, tier = places[n % 2]
        member = MemberFactory(practice=practice, home_location=location, first_name=f"Zed{n:02d}",
                               last_name="Quorrington" if n < 2 else "Quorrel")
        active_membership(tier=tier, member=member)
    client = signed_in(world.harbor_desk)
    _page(client, "Quorr")   # the session and the caches warm alike for both
    two, two_sql = _page(client, "Quorrington")
    many, many_sql = _page(client, "Quorr")
    assert len(two.context["results"]) == 2 and len(many.context["results"]) == 25
    assert len(many_sql) == len(two_sql), "\n".join(many_sql)
    assert sum(sql.startswith("INSERT") and "audit" in sql for sql in many_sql) == 1
    # every member shown has a membership shown and an audit row
    assert all(membership is not None for _, membership in many.context["results"])
    assert AuditLog.objects.filter(action="search_members").count() == 2 + 25 + 25
