"""The floor of the dunning run: the rows the sweep writes for a practice's failed invoices (cases,
planned steps, chart flags, timeline events, day-0 messages and their outbox rows, the day-0 steps
finished) written by hand-written set-based SQL, one statement per table (plus the step and case
updates), in one transaction. It knows this benchmark's data only: one practice, its current policy,
no quiet hours at `now`, no record adapter, the dunning stage (nothing shadowed)."""

from __future__ import annotations

from datetime import datetime

from django.db import connection, transaction

from billing.models import DunningCase, DunningMessage, DunningPolicy, DunningStep, Invoice
from integrations.models import Delivery
from memberships.models import ChartFlag, Event, Member, Membership, Practice


def _tables() -> dict[str, str]:
    return {"case": DunningCase._meta.db_table, "step": DunningStep._meta.db_table,
            "msg": DunningMessage._meta.db_table, "flag": ChartFlag._meta.db_table, "event": Event._meta.db_table,
            "delivery": Delivery._meta.db_table, "invoice": Invoice._meta.db_table,
            "membership": Membership._meta.db_table, "member": Member._meta.db_table,
            "practice": Practice._meta.db_table}


def _plan_values(policy: DunningPolicy) -> str:
    """The policy's steps as a VALUES list: (key, number, kind, days after opening)."""
    from billing.dunning.policy import planned_steps

    probe = DunningCase(opened_at=datetime(2000, 1, 1), hard=False)
    rows = []
    for step in planned_steps(probe, policy):
        days = (step.due_at - probe.opened_at).days
        rows.append(f"('{step.key}', {step.number}, '{step.kind}', {days})")
    return ", ".join(rows)


STATEMENTS = [
    # the cases
    """INSERT INTO {case} (practice_id, member_id, membership_id, policy_id, invoice_ref, amount_cents, currency,
           decline_code, hard, status, failure_count, last_failure_at, opened_at, close_reason)
       SELECT i.practice_id, ms.member_id, i.membership_id, %(policy)s, i.processor_invoice_id, i.amount_cents,
              i.currency, COALESCE(NULLIF(i.last_decline_code, ''), i.last_failure_code), i.hard_decline, 'open', 1,
              i.failed_at, %(now)s, ''
       FROM {invoice} i JOIN {membership} ms ON ms.id = i.membership_id
       WHERE i.practice_id = %(practice)s AND i.status = 'open' AND i.failed_at IS NOT NULL
         AND ms.status IN ('active', 'pending', 'past_due', 'lapsed')
         AND NOT EXISTS (SELECT 1 FROM {case} c WHERE c.practice_id = i.practice_id
                         AND c.invoice_ref = i.processor_invoice_id)
       ON CONFLICT (practice_id, invoice_ref) DO NOTHING""",
    # their steps
    """INSERT INTO {step} (case_id, key, number, kind, due_at, status, note)
       SELECT c.id, v.key, v.number, v.kind, c.opened_at + make_interval(days => v.days), 'pending', ''
       FROM {case} c CROSS JOIN (VALUES {plan}) AS v(key, number, kind, days)
       WHERE c.practice_id = %(practice)s AND c.opened_at = %(now)s AND NOT (v.kind = 'retry' AND c.hard)""",
    # the chart flags
    """INSERT INTO {flag} (practice_id, member_id, membership_id, source, source_ref, text, status, opened_at,
           cleared_reason)
       SELECT c.practice_id, c.member_id, c.membership_id, 'dunning', 'dunning-case:' || c.id, %(flag_text)s, 'open',
              %(now)s, ''
       FROM {case} c WHERE c.practice_id = %(practice)s AND c.opened_at = %(now)s""",
    # the opening's events: opened, unreachable, flagged
    """INSERT INTO {event} (practice_id, member_id, membership_id, kind, summary, payload, actor_type, created_at)
       SELECT practice_id, member_id, membership_id, kind, summary, payload, 'system', %(now)s FROM (
         SELECT c.id AS case_id, 1 AS n, c.practice_id, c.member_id, c.membership_id, 'dunning_opened' AS kind,
                'Charge of $' || to_char(c.amount_cents / 100.0, 'FM999,999,990.00') || ' declined ('
                || replace(c.decline_code, '_', ' ') || '); payment follow-up started (policy v'
                || %(version)s || ')' AS summary,
                jsonb_build_object('case_id', c.id, 'invoice_ref', c.invoice_ref, 'policy_id', %(policy)s,
                                   'policy_version', %(version)s, 'amount_cents', c.amount_cents,
                                   'currency', c.currency, 'decline_code', c.decline_code, 'hard', c.hard) AS payload
         FROM {case} c WHERE c.practice_id = %(practice)s AND c.opened_at = %(now)s
         UNION ALL
         SELECT c.id, 2, c.practice_id, c.member_id, c.membership_id, 'dunning',
                'No message can reach this member (no SMS consent, no email): call them',
                jsonb_build_object('case_id', c.id, 'invoice_ref', c.invoice_ref, 'unreachable', true)
         FROM {case} c JOIN {member} mb ON mb.id = c.member_id
         WHERE c.practice_id = %(practice)s AND c.opened_at = %(now)s AND mb.email = ''
           AND NOT (mb.phone <> '' AND mb.sms_consent AND mb.sms_opted_out_at IS NULL)
         UNION ALL
         SELECT c.id, 3, f.practice_id, f.member_id, f.membership_id, 'flagged', 'Chart flagged: ' || f.text,
                jsonb_build_object('flag_id', f.id, 'source', f.source, 'source_ref', f.source_ref, 'text', f.text,
                                   'reason', 'card_declined')
         FROM {case} c JOIN {flag} f ON f.source_ref = 'dunning-case:' || c.id AND f.status = 'open'
         WHERE c.practice_id = %(practice)s AND c.opened_at = %(now)s
       ) AS e ORDER BY case_id, n""",
    # the day-0 messages: SMS with consent, email to an address
    """INSERT INTO {msg} (case_id, step_id, channel, reason, subject, body, status, provider_id, error_code,
           created_at)
       SELECT c.id, s.id, s.kind, 'schedule',
              CASE WHEN s.kind = 'email' THEN p.name || ': please update your card' ELSE '' END,
              'Hi ' || mb.first_name || ', the card on file for your ' || p.name || ' membership was declined. '
              || 'Please update it here: ' || %(link)s || md5(c.id::text) || ' Reply STOP to opt out.',
              'pending', '', '', %(now)s
       FROM {case} c JOIN {step} s ON s.case_id = c.id JOIN {member} mb ON mb.id = c.member_id
            JOIN {practice} p ON p.id = c.practice_id
       WHERE c.practice_id = %(practice)s AND c.opened_at = %(now)s AND s.status = 'pending' AND s.due_at <= %(now)s
         AND ((s.kind = 'sms' AND mb.phone <> '' AND mb.sms_consent AND mb.sms_opted_out_at IS NULL)
              OR (s.kind = 'email' AND mb.email <> ''))
       ORDER BY s.due_at, s.number, s.id""",
    # their events
    """INSERT INTO {event} (practice_id, member_id, membership_id, kind, summary, payload, actor_type, created_at)
       SELECT c.practice_id, c.member_id, c.membership_id, 'dunning_message',
              'Card-update ' || CASE WHEN m.channel = 'sms' THEN 'SMS' ELSE 'Email' END || ' queued (step 0)',
              jsonb_build_object('case_id', c.id, 'invoice_ref', c.invoice_ref, 'message_id', m.id,
                                 'channel', m.channel, 'reason', m.reason, 'shadowed', false, 'step', 0),
              'system', %(now)s
       FROM {msg} m JOIN {case} c ON c.id = m.case_id
       WHERE c.practice_id = %(practice)s AND c.opened_at = %(now)s ORDER BY m.id""",
    # their outbox rows
    """INSERT INTO {delivery} (event_id, practice_id, destination, status, attempts, next_attempt_at, last_error,
           note, result, created_at)
       SELECT e.id, e.practice_id, 'member_message', 'pending', 0, %(now)s, '', '', '{{}}', %(now)s
       FROM {event} e WHERE e.practice_id = %(practice)s AND e.kind = 'dunning_message' AND e.created_at = %(now)s""",
    # the day-0 steps: done (with their message) or skipped
    """UPDATE {step} s SET status = 'done', done_at = %(now)s, note = m.channel || ' message ' || m.id
       FROM {msg} m WHERE m.step_id = s.id AND m.created_at = %(now)s""",
    """UPDATE {step} s SET status = 'skipped', done_at = %(now)s,
           note = CASE WHEN s.kind = 'sms' THEN 'no SMS consent; the step''s email goes instead'
                       ELSE 'no email address' END
       FROM {case} c WHERE c.id = s.case_id AND c.practice_id = %(practice)s AND c.opened_at = %(now)s
         AND s.status = 'pending' AND s.kind IN ('sms', 'email') AND s.due_at <= %(now)s""",
    # the cases' next action
    """UPDATE {case} c SET next_action_at = (SELECT min(s.due_at) FROM {step} s
                                              WHERE s.case_id = c.id AND s.status = 'pending')
       WHERE c.practice_id = %(practice)s AND c.opened_at = %(now)s""",
]


def write_floor(*, practice_id: int, now: datetime, link_prefix: str) -> None:
    policy = DunningPolicy.objects.get(practice_id=practice_id, is_current=True)
    names = {**_tables(), "plan": _plan_values(policy)}
    params = {"practice": practice_id, "now": now, "policy": policy.pk, "version": str(policy.version),
              "flag_text": policy.flag_text, "link": link_prefix}
    with transaction.atomic(), connection.cursor() as cursor:
        for statement in STATEMENTS:
            cursor.execute(statement.format(**names), params)
