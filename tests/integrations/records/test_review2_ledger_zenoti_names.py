"""A member's first name written with an accent in one system and without it in the other ('Renée' in
the ledger, 'Renee' at Zenoti), or spaced differently, is still her chart: she is linked to her own
guest, not given a second, empty one in Zenoti (her notes and alerts there, her treatments here
coming in from the old chart as an unknown patient). A household member of another name still is not
linked to it."""

from __future__ import annotations

import pytest

from .test_pipeline_review_zenoti_household import DAUGHTER, MOTHER, guest, household, member  # noqa: F401

pytestmark = pytest.mark.django_db


def test_a_first_name_spelled_without_its_accent_or_spaced_otherwise_is_the_same_guest(household):  # noqa: F811
    adapter, practice = household([guest(MOTHER, "Renee"), guest(DAUGHTER, "Mary  ann")])
    assert adapter.find_patient(member(practice, "Renée")) == MOTHER
    assert adapter.find_patient(member(practice, "Mary Ann")) == DAUGHTER
    assert adapter.find_patient(member(practice, "René")) is None      # another person of the household


def test_a_lone_guest_without_a_first_name_is_taken(household):  # noqa: F811
    adapter, practice = household([guest(MOTHER, "")])
    assert adapter.find_patient(member(practice, "Renée")) == MOTHER
