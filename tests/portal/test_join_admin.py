"""The manager writes the membership agreement in the admin: a new version for their own practice,
published when they say; a version someone accepted cannot be edited or deleted, and the page of
acceptances (member data) is audited."""

from django.utils import timezone

from memberships.models import AuditLog, MembershipAgreement
from memberships.services.joining import current_agreement
from tests.factories import PracticeFactory

from .test_join_confirmed import completed, drain, start
from .join_support import online, processor  # noqa: F401  (fixtures)
from tests.support.stripe_events import post_event

ADD = "/admin/memberships/membershipagreement/add/"


def test_a_manager_publishes_a_new_version_for_their_practice(client, manager, online):
    client.force_login(manager)
    page = client.get(ADD)
    assert page.status_code == 200 and b'value="4"' in page.content          # the next version is proposed
    other = PracticeFactory(slug="elsewhere")
    refused = client.post(ADD, {"practice": other.pk, "version": 4, "text": "Theirs", "published_at_0": "2026-01-01",
                                "published_at_1": "10:00"})
    assert refused.status_code == 200 and not MembershipAgreement.objects.filter(practice=other).exists()
    response = client.post(ADD, {"practice": online["practice"].pk, "version": 4, "text": "New terms.",
                                 "published_at_0": "2026-01-01", "published_at_1": "10:00"})
    assert response.status_code == 302
    assert current_agreement(online["practice"], now=timezone.now()).text == "New terms."


def test_an_accepted_version_is_read_only_and_its_acceptances_are_audited(client, manager, online, processor):
    attempt = start(client, online)
    post_event(client, completed(attempt))
    drain()
    agreement = online["agreement"]
    client.force_login(manager)
    page = client.get(f"/admin/memberships/membershipagreement/{agreement.pk}/change/")
    assert page.status_code == 200 and b'name="text"' not in page.content
    client.post(f"/admin/memberships/membershipagreement/{agreement.pk}/delete/", {"post": "yes"})
    assert MembershipAgreement.objects.filter(pk=agreement.pk).exists()
    before = AuditLog.objects.count()
    assert client.get("/admin/memberships/agreementacceptance/").status_code == 200
    assert AuditLog.objects.count() == before + 1
