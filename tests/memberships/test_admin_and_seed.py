"""The admin (read-only ledger, corrections through actions) and the demo seed."""

from django.core.management import call_command

from memberships.models import EntitlementBalance, Event, LedgerEntry, Member, Membership, MembershipStatus
from tests.factories import active_membership


def test_ledger_entries_are_read_only_in_admin(client, manager, glow):
    tier, facial, _ = glow
    m = active_membership(tier=tier)
    entry = LedgerEntry.objects.filter(membership=m).first()
    client.force_login(manager)
    assert client.get("/admin/memberships/tier/").status_code == 200  # a manager configures tiers
    assert client.get("/admin/memberships/ledgerentry/").status_code == 200
    page = client.get(f"/admin/memberships/ledgerentry/{entry.pk}/change/")
    assert page.status_code == 200 and b'name="_save"' not in page.content
    assert client.get("/admin/memberships/ledgerentry/add/").status_code == 403
    assert client.post(f"/admin/memberships/ledgerentry/{entry.pk}/delete/", {"post": "yes"}).status_code == 403
    assert LedgerEntry.objects.filter(pk=entry.pk).exists()


def test_processor_ids_are_read_only_in_admin(client, manager, glow):
    tier, _, _ = glow
    m = active_membership(tier=tier)
    Member.objects.filter(pk=m.member_id).update(processor_customer_id="cus_own")
    Membership.objects.filter(pk=m.pk).update(processor_subscription_id="sub_own")
    client.force_login(manager)
    page = client.get(f"/admin/memberships/member/{m.member_id}/change/")
    assert page.status_code == 200 and b"cus_own" in page.content
    assert b'name="processor_customer_id"' not in page.content
    page = client.get(f"/admin/memberships/membership/{m.pk}/change/")
    assert page.status_code == 200 and b"sub_own" in page.content
    assert b'name="processor_subscription_id"' not in page.content


def test_admin_reverse_action_needs_a_reason_and_reverses_once(client, manager, glow):
    from django.utils import timezone

    from memberships import services

    tier, facial, _ = glow
    m = active_membership(tier=tier)
    redemption = services.redeem_entitlement(membership=m, service=facial, actor=services.Actor.system(),
                                             idempotency_key="r", now=timezone.now())
    client.force_login(manager)
    url = "/admin/memberships/ledgerentry/"
    form = client.post(url, {"action": "reverse_selected", "_selected_action": [redemption.pk]})
    assert form.status_code == 200 and b"reason" in form.content.lower()
    missing = client.post(url, {"action": "reverse_selected", "_selected_action": [redemption.pk], "apply": "1",
                                "reason": ""})
    assert missing.status_code == 200 and b"This field is required" in missing.content
    for _ in range(2):
        client.post(url, {"action": "reverse_selected", "_selected_action": [redemption.pk], "apply": "1",
                          "reason": "Charged the wrong member", "dispute": "on"})
    assert EntitlementBalance.objects.get(membership=m, service=facial).balance == 1
    reversal = LedgerEntry.objects.get(reverses=redemption)
    assert reversal.actor_user == manager and reversal.dispute


def test_seed_demo_is_believable_and_idempotent(db, capsys):
    call_command("seed_demo", members=25)
    out = capsys.readouterr().out
    assert "frontdesk / demo-frontdesk-2026" in out and "manager / demo-manager-2026" in out
    first = (Member.objects.count(), LedgerEntry.objects.count(), Event.objects.count())
    statuses = set(Membership.objects.values_list("status", flat=True))
    assert Member.objects.filter(practice__slug="glow-aesthetics").count() == 25       # (the group's other practice: its own)
    assert MembershipStatus.ACTIVE in statuses and len(statuses) >= 3
    assert LedgerEntry.objects.filter(kind="redeem").exists() and LedgerEntry.objects.filter(kind="expire").exists()
    # charges went through the processor path: one mirrored invoice per refill, past-due members dunned
    from billing.models import DunningCase, Invoice

    grants = LedgerEntry.objects.filter(kind="grant").values("cycle_key").distinct().count()
    assert Invoice.objects.filter(status="paid").count() == grants
    past_due = Membership.objects.filter(status=MembershipStatus.PAST_DUE).count()
    assert DunningCase.objects.filter(status="open").count() == past_due
    # the dashboard's reconciliation and payback sections have something to show, made by the real
    # import, reconciliation and resolve services: runs, discrepancies (some resolved), a dispute
    from billing.models import Discrepancy, ImportBatch, ReconciliationRun

    runs = list(ReconciliationRun.objects.order_by("started_at").values_list("total", flat=True))
    assert len(runs) == 4 and runs[0] > 0
    assert Discrepancy.objects.filter(resolved_at__isnull=False).exists()
    assert Discrepancy.objects.filter(resolved_at__isnull=True, gone_at__isnull=True).exists()
    assert Discrepancy.objects.filter(kind="price_mismatch").exists()
    assert LedgerEntry.objects.filter(kind="reverse", dispute=True).count() == 2
    assert DunningCase.objects.filter(status="recovered").exists()
    mirror = (ImportBatch.objects.count(), ReconciliationRun.objects.count(), Discrepancy.objects.count(),
              DunningCase.objects.count())
    call_command("seed_demo", members=25)
    assert (Member.objects.count(), LedgerEntry.objects.count(), Event.objects.count()) == first
    assert (ImportBatch.objects.count(), ReconciliationRun.objects.count(), Discrepancy.objects.count(),
            DunningCase.objects.count()) == mirror
