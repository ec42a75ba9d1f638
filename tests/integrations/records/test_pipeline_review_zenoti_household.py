"""A household shares one email (a mother and her daughter, both members): Zenoti's guest search by
that email answers the mother's chart for either of them. The daughter is linked only to a guest of
her own first name — never to her mother's chart, where her membership notes would be written and
whose treatments would then be spent from the wrong balance."""

from __future__ import annotations

import pytest

from integrations.records import get_adapter
from memberships.models import AutomationStage
from tests.factories import MemberFactory

from .test_zenoti import FakeZenoti

pytestmark = pytest.mark.django_db

MOTHER, DAUGHTER = "guest-linda-0001", "guest-emma-0002"


class HouseholdZenoti(FakeZenoti):
    def __init__(self, server, guests):
        self.guests = guests
        super().__init__(server)

    def handle(self, request):
        if request.path == "/v1/guests/search":
            self.calls.append((request.method, request.path))
            return self.json({"guests": self.guests if request.args.get("email") else [],
                              "page_Info": {"total": len(self.guests)}})
        return super().handle(request)


def guest(guest_id, first, last="Reyes"):
    return {"id": guest_id, "personal_info": {"first_name": first, "last_name": last,
                                              "email": "reyes.family@example.com"}}


@pytest.fixture
def household(httpserver, on_adapter):
    def make(guests):
        HouseholdZenoti(httpserver, guests)
        practice = on_adapter("zenoti", stage=AutomationStage.REDEMPTIONS,
                              base_url=httpserver.url_for("").rstrip("/"), api_key="zen-key",
                              center_id="c0ffee00-1111-2222-3333-444455556666")
        return get_adapter(practice), practice
    return make


def member(practice, first):
    return MemberFactory(practice=practice, first_name=first, last_name="Reyes", email="reyes.family@example.com",
                         record_patient_id="")


def test_a_member_is_not_linked_to_another_household_member_s_chart(household):
    adapter, practice = household([guest(MOTHER, "Linda")])
    assert adapter.find_patient(member(practice, "Linda")) == MOTHER
    assert adapter.find_patient(member(practice, "Emma")) is None


def test_each_household_member_finds_her_own_chart(household):
    adapter, practice = household([guest(MOTHER, "Linda"), guest(DAUGHTER, " emma ")])
    assert adapter.find_patient(member(practice, "Emma")) == DAUGHTER
    assert adapter.find_patient(member(practice, "Linda")) == MOTHER
