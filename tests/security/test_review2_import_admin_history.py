"""An admin row's change history names the row ('Change history: Zelda Quixotic'): opening it
leaves the audit row its page leaves, for the member it is about."""

from django.urls import reverse

from memberships.models import AuditLog
from tests.factories import MemberFactory, active_membership


def test_a_members_admin_history_leaves_her_audit_row(client, manager, glow):
    tier, *_ = glow
    zelda = MemberFactory(practice=tier.practice, first_name="Zelda", last_name="Quixotic")
    membership = active_membership(tier=tier, member=zelda)
    client.force_login(manager)
    for url in (reverse("admin:memberships_member_history", args=[zelda.pk]),
                reverse("admin:memberships_membership_history", args=[membership.pk])):
        before = AuditLog.objects.filter(member=zelda, user=manager).count()
        page = client.get(url)
        assert page.status_code == 200 and "Quixotic" in page.content.decode()
        assert AuditLog.objects.filter(member=zelda, user=manager).count() == before + 1, url
