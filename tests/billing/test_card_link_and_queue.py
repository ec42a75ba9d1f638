"""The card-update link (member side), the dunning queue's selector and staff actions, the policy
rules, the schedule and the admin."""

from datetime import timedelta

import pytest
from django.core import mail

from billing import dunning
from billing.dunning.errors import CaseClosed, InvalidPolicy
from billing.dunning.links import card_link_token, card_return_token
from billing.dunning.policy import current_policy, update_dunning_policy
from billing.dunning.selectors import amount_at_risk, open_dunning_cases
from billing.models import DunningCaseStatus, DunningPolicy, DunningStep
from memberships.models import Event, EventKind
from memberships.services import Actor

from .conftest import T0, fail, sms_to, tick, walk


def test_card_link_redirects_to_the_processor_page_and_a_confirmed_card_retries_now(client, membership,
                                                                                    fake_processor, time_machine):
    from django.utils import timezone

    from integrations.processors.dunning import RetryOutcome

    # The link's pages read the clock: it is moved to T0 (10:00 in the member's zone, ticking), where
    # quiet hours hold no SMS, whatever the hour the suite runs at.
    time_machine.move_to(T0)
    now = timezone.now()
    case = fail(membership, code="expired_card", now=now)
    assert case.hard
    tick(now)
    link = sms_to(membership.member)[0].body.split("here: ")[1].split()[0]
    path = link.replace("https://ledger.example.com", "")
    response = client.get(path)
    assert response.status_code == 302
    assert response["Location"].startswith("https://billing.processor.test/session/cus_test?return_url=")
    return_path = f"/billing/card/{card_return_token(case.pk)}/done/"
    assert return_path in response["Location"]
    # The member comes back from the processor's page: thanked, nothing charged yet.
    response = client.get(return_path)
    assert response.status_code == 200 and b"Thank you" in response.content
    assert not DunningStep.objects.filter(case=case, kind="retry").exists()
    # The processor reports the new default card: the open invoice is paid right away.
    fake_processor.will_answer("in_1", RetryOutcome.succeeded())
    dunning.retry_open_cases_after_card_update(member=membership.member, payment_method_ref="pm_new",
                                               now=timezone.now())
    assert DunningStep.objects.filter(case=case, kind="retry").count() == 1
    walk(timezone.now(), timezone.now() + timedelta(minutes=10))
    case.refresh_from_db()
    assert case.status == DunningCaseStatus.RECOVERED and len(fake_processor.charges) == 1
    response = client.get(path)
    assert response.status_code == 200 and b"Nothing to update" in response.content


def test_reloading_the_return_page_never_charges_a_stolen_card(client, membership, fake_processor):
    """The review's repro: five loads of the return page, the dunning run in between, on a hard
    decline: no charge attempt at all (before, each load charged the stolen card again)."""
    from django.utils import timezone

    now = timezone.now()
    case = fail(membership, code="stolen_card", now=now)
    assert case.hard
    return_path = f"/billing/card/{card_return_token(case.pk)}/done/"
    for minute in range(5):
        assert client.get(return_path).status_code == 200
        walk(now + timedelta(minutes=minute), now + timedelta(minutes=minute, seconds=30))
    assert fake_processor.charges == []
    assert not DunningStep.objects.filter(case=case, kind="retry").exists()
    case.refresh_from_db()
    assert case.status == DunningCaseStatus.OPEN


def test_the_message_link_token_does_not_open_the_return_page(client, membership):
    case = fail(membership)
    message_token, return_token = card_link_token(case.pk), card_return_token(case.pk)
    assert message_token != return_token
    assert client.get(f"/billing/card/{message_token}/done/").status_code == 404
    assert client.get(f"/billing/card/{return_token}/").status_code == 404


def test_card_update_retries_once_per_new_card_and_at_most_three_per_case(membership, fake_processor, settings):
    case = fail(membership, code="stolen_card")
    member = membership.member
    now = T0
    assert len(dunning.retry_open_cases_after_card_update(member=member, payment_method_ref="pm_a", now=now)) == 1
    tick(now)
    # The same card reported again (a replayed or repeated webhook): no second charge.
    now += timedelta(hours=1)
    assert dunning.retry_open_cases_after_card_update(member=member, payment_method_ref="pm_a", now=now) == []
    tick(now)
    assert len(fake_processor.charges) == 1
    for card in ("pm_b", "pm_c", "pm_d", "pm_e"):
        now += timedelta(hours=1)
        dunning.retry_open_cases_after_card_update(member=member, payment_method_ref=card, now=now)
        tick(now)
    assert len(fake_processor.charges) == settings.DUNNING_CARD_UPDATE_RETRIES == 3
    case.refresh_from_db()
    assert case.status == DunningCaseStatus.OPEN
    assert Event.objects.filter(member=member, summary__contains="had its 3 card-update retries").count() == 2
    with pytest.raises(ValueError):
        dunning.retry_after_card_update(case=case, payment_method_ref="", now=now)


def test_a_forged_or_expired_link_shows_nothing(client, membership, settings):
    case = fail(membership)
    token = card_link_token(case.pk)
    assert client.get(f"/billing/card/{token}x/").status_code == 404
    assert client.get(f"/billing/card/{case.pk}/").status_code == 404
    settings.DUNNING_CARD_LINK_MAX_AGE_DAYS = -1
    assert client.get(f"/billing/card/{token}/").status_code == 410  # expired: a plain page, no redirect


def test_queue_selector_gives_next_action_and_amount_at_risk(member_factory, dunning_practice):
    first = fail(member_factory(), invoice="in_a", amount=19900)
    fail(member_factory(), invoice="in_b", amount=9900, code="lost_card")
    tick(T0)
    rows = open_dunning_cases(dunning_practice.pk)
    assert [r.invoice_ref for r in rows] == ["in_a", "in_b"]
    assert rows[0].next_action.kind == "retry" and rows[0].next_action.due_at == T0 + timedelta(days=3)
    assert rows[0].next_action.label == "Retry (step 1)"
    assert rows[1].next_action.kind == "sms" and rows[1].hard  # no retries for a hard decline
    assert rows[0].amount_display == "$199.00" and rows[0].messages_sent == 2
    assert amount_at_risk(dunning_practice.pk) == {"usd": 29800}
    dunning.close_case_for_payment(invoice_ref="in_a", now=T0 + timedelta(hours=1))
    assert [r.case_id for r in open_dunning_cases(dunning_practice.pk)] != [first.pk]
    assert amount_at_risk(dunning_practice.pk) == {"usd": 9900}


def test_staff_resend_and_mark_contacted(membership, manager):
    member = membership.member
    case = fail(membership)
    tick(T0)
    now = T0 + timedelta(hours=2)
    made = dunning.resend_card_link(case, Actor.staff(manager), now)
    tick(now)
    assert {m.channel for m in made} == {"sms", "email"}
    assert len(sms_to(member)) == 2 and len(mail.outbox) == 2
    dunning.mark_contacted(case, Actor.staff(manager), "Called; will update the card tonight", now)
    case.refresh_from_db()
    assert case.last_contacted_at == now
    note = Event.objects.filter(member=member, kind=EventKind.DUNNING, actor_user=manager).first()
    assert "will update the card" in note.summary
    dunning.close_case_for_payment(invoice_ref="in_1", now=now)
    with pytest.raises(CaseClosed):
        dunning.resend_card_link(case, Actor.staff(manager), now)


def test_resend_in_quiet_hours_sends_email_now_and_sms_at_eight(membership, manager):
    case = fail(membership)
    tick(T0)
    night = T0.replace(hour=7) + timedelta(days=1)  # 23:00 in Los Angeles
    dunning.resend_card_link(case, Actor.staff(manager), night)
    tick(night)
    assert len(sms_to(membership.member)) == 1 and len(mail.outbox) == 2
    walk(night, night + timedelta(hours=10), step=timedelta(hours=1))
    assert len(sms_to(membership.member)) >= 2


def test_policy_edits_are_validated_and_versioned(dunning_practice, glow, manager):
    v1 = current_policy(practice=dunning_practice, now=T0)
    with pytest.raises(InvalidPolicy) as err:
        update_dunning_policy(practice=dunning_practice, actor=Actor.staff(manager), now=T0,
                              changes={"sms_template": "Your HydraFacial is waiting: {{ card_update_link }}"})
    assert "nothing clinical" in err.value.context["errors"]["sms_template"]
    bad = [
        {"retry_offsets_days": [3, 0]},
        {"step_channels": ["sms"]},
        {"sms_template": "Hi {{ member.phone }} {{ card_update_link }}"},
        {"email_body_template": "{% load x %}{{ card_update_link }}"},
        {"sms_template": "Hi, please update your card."},
        {"exhaust_after_days": 2},
    ]
    for changes in bad:
        with pytest.raises(InvalidPolicy):
            update_dunning_policy(practice=dunning_practice, actor=Actor.staff(manager), now=T0, changes=changes)
    assert DunningPolicy.objects.filter(practice=dunning_practice).count() == 1
    v2 = update_dunning_policy(practice=dunning_practice, actor=Actor.staff(manager), now=T0,
                               changes={"retry_offsets_days": [0, 2, 4], "step_channels": ["both", "sms", "email"]})
    v1.refresh_from_db()
    assert (v1.version, v1.is_current, v2.version, v2.is_current) == (1, False, 2, True)
    assert v2.created_by == manager


def test_schedule_is_created_on_migrate(db):
    from django_q.models import Schedule

    from medspa.schedules import ensure_schedules as ensure_schedule

    ensure_schedule()
    ensure_schedule()
    schedule = Schedule.objects.get(name="dunning: run due steps")
    assert schedule.func == "billing.dunning.tasks.run_dunning_task" and schedule.minutes == 5


def test_task_runs_due_steps_by_the_real_clock(membership, time_machine):
    from django.utils import timezone

    from billing.dunning.tasks import run_dunning_task

    time_machine.move_to(T0)    # the task reads the clock itself; at 10:00 quiet hours hold no SMS
    dunning.open_case_for_failure(membership=membership, invoice_ref="in_now", amount_cents=100, now=timezone.now())
    assert run_dunning_task().get("sms", 0) + run_dunning_task().get("email", 0) >= 1


def test_admin_policy_edit_makes_a_new_version_and_case_page_shows_the_timeline(admin_client, membership,
                                                                                  dunning_practice):
    case = fail(membership)
    policy = case.policy
    url = f"/admin/billing/dunningpolicy/{policy.pk}/change/"
    assert admin_client.get(url).status_code == 200
    data = {
        "retry_offsets_days": "[0, 4, 8]", "step_channels": '["both", "email", "both"]',
        "exhausted_action": "cancel", "flag_text": policy.flag_text, "sms_template": policy.sms_template,
        "email_subject_template": policy.email_subject_template, "email_body_template": policy.email_body_template,
        "exhaust_after_days": "",
    }
    response = admin_client.post(url, data)
    assert response.status_code == 302, response.content.decode()[:2000]
    current = DunningPolicy.objects.get(practice=dunning_practice, is_current=True)
    assert current.version == 2 and current.retry_offsets_days == [0, 4, 8]
    policy.refresh_from_db()
    assert policy.retry_offsets_days == [0, 3, 5, 7]  # the old version is untouched
    response = admin_client.post(url.replace(str(policy.pk), str(current.pk)),
                                 {**data, "sms_template": "Your HydraFacial {{ card_update_link }}"})
    assert response.status_code == 200 and b"nothing clinical" in response.content
    page = admin_client.get(f"/admin/billing/dunningcase/{case.pk}/change/")
    assert page.status_code == 200 and b"payment follow-up started" in page.content


def test_a_member_no_message_can_reach_is_called_out_on_open_and_in_the_queue(client, member_factory, manager,
                                                                            dunning_practice):
    from django.urls import reverse

    silent = member_factory(sms_consent=False, email="")
    reachable = member_factory()
    fail(silent, invoice="in_silent")
    fail(reachable, invoice="in_reachable")
    assert Event.objects.filter(member=silent.member, kind=EventKind.DUNNING,
                                summary__startswith="No message can reach this member").count() == 1
    assert not Event.objects.filter(member=reachable.member, summary__startswith="No message can reach").exists()
    rows = {r.invoice_ref: r for r in open_dunning_cases(dunning_practice.pk)}
    assert rows["in_silent"].unreachable and not rows["in_reachable"].unreachable
    client.force_login(manager)
    page = client.get(reverse("manager:dunning")).content.decode()
    assert page.count('data-testid="unreachable"') == 1
