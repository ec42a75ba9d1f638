"""Joining online with an email or mobile a household shares: the person who pays becomes the
member, never a relative who is already on file with the same address (as the spreadsheet import
decides it: a match by email or mobile must have the same first name)."""

import pytest

from integrations import inbox
from memberships.models import AgreementAcceptance, Member, Membership, MembershipStatus
from tests.factories import MemberFactory, active_membership
from tests.support.stripe_events import post_event

from .join_support import form, online, processor  # noqa: F401  (fixtures)
from .test_join_confirmed import completed, first_invoice, start

pytestmark = pytest.mark.django_db


def _drain():
    from django.utils import timezone

    inbox.process_due(now=timezone.now())


@pytest.mark.parametrize("mother_has_a_membership", [False, True])
def test_a_daughter_joining_with_her_mothers_email_becomes_a_member_of_her_own(client, online, processor,  # noqa: F811
                                                                               mother_has_a_membership):
    mother = MemberFactory(practice=online["practice"], first_name="Ruth", last_name="Newman",
                           email="newman.family@example.com", phone="+14155550100")
    if mother_has_a_membership:
        active_membership(tier=online["tier"], member=mother)
    attempt = start(client, online, first_name="Nora", email="Newman.Family@example.com")
    post_event(client, completed(attempt))
    post_event(client, first_invoice())
    _drain()
    nora = Member.objects.exclude(pk=mother.pk).get()
    assert (nora.first_name, nora.last_name, nora.email) == ("Nora", "Newman", "newman.family@example.com")
    assert Membership.objects.get(member=nora).status == MembershipStatus.ACTIVE
    assert AgreementAcceptance.objects.get().member == nora            # she signed, not her mother
    mother.refresh_from_db()
    assert mother.first_name == "Ruth" and mother.processor_customer_id == ""
    assert Membership.objects.filter(member=mother).count() == (1 if mother_has_a_membership else 0)


def test_a_shared_mobile_with_another_first_name_is_not_a_match_either(client, online, processor):  # noqa: F811
    brother = MemberFactory(practice=online["practice"], first_name="Sam", last_name="Newman",
                            email="sam@example.com", phone="+14155550177")
    attempt = start(client, online)                                    # Nora, (415) 555-0177
    post_event(client, completed(attempt))
    _drain()
    assert Membership.objects.get().member.first_name == "Nora"
    assert not Membership.objects.filter(member=brother).exists()


def test_the_same_first_name_with_another_surname_is_still_the_member_on_file(client, online, processor):  # noqa: F811
    married = MemberFactory(practice=online["practice"], first_name="NORA", last_name="Smith",
                            email="nora.newman@example.com", phone="")
    attempt = start(client, online)
    post_event(client, completed(attempt))
    _drain()
    assert Member.objects.count() == 1 and Membership.objects.get().member == married
