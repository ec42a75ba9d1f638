"""Connections made when the app is ready: the chart's payment line (when the open case's charge
failed and when it is retried next), read in the chart's own query; and a membership cancelled by
anyone — the desk, the member's approved request, the processor — ends its open cases in the
cancellation's own transaction (`cases.end_cases_of_cancelled`). The dunning schedule is listed with
every periodic job in `medspa.schedules`."""

from __future__ import annotations


def connect(app_config) -> None:
    from memberships.selectors import register_chart_count
    from memberships.services.common import register_event_sink

    from .cases import end_cases_of_cancelled
    from .selectors import chart_failed_at, chart_next_retry_at

    register_chart_count("payment_failed_at", chart_failed_at)
    register_chart_count("payment_retry_at", chart_next_retry_at)
    register_event_sink(end_cases_of_cancelled)
