"""django-q2 settings that neither lose nor loop work."""

from django.conf import settings


def test_a_running_task_is_never_handed_out_twice():
    q = settings.Q_CLUSTER
    # retry > timeout > the longest task we run (the sweeps stop themselves earlier)
    assert q["retry"] > q["timeout"] > settings.INBOX_SWEEP_SECONDS + settings.INBOX_TRIGGER_SECONDS + 10


def test_attempts_are_bounded_and_failures_kept():
    q = settings.Q_CLUSTER
    assert 1 <= q["max_attempts"] <= 10
    assert q["ack_failures"] is True          # a failed task is acknowledged, not redelivered forever
    assert q.get("save_limit", 0) >= 0        # failures are always saved; successes up to the limit


def test_missed_schedules_are_not_replayed_in_bulk():
    assert settings.Q_CLUSTER["catch_up"] is False


def test_inbox_retries_outlast_stripe_own_retries():
    """Stripe retries for three days; an event waiting for its object is tried at least as long."""
    total, delay = 0, settings.INBOX_RETRY_BASE_SECONDS
    for attempt in range(1, settings.INBOX_MAX_ATTEMPTS):
        total += min(settings.INBOX_RETRY_MAX_SECONDS, delay * 2 ** (attempt - 1)) / 2   # jitter's lower bound
    assert total >= 3 * 24 * 3600
