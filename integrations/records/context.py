"""Template context for every staff page: the count of open record exceptions in the navigation.
Lazy: read only when a page shows it (the navigation shows it to those who may resolve them), and a
page that already knows it (the chart, through its registered chart count) passes it instead."""

from __future__ import annotations

from django.utils.functional import SimpleLazyObject


def record_exceptions(request) -> dict:
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {}

    def count() -> int:
        from .selectors import open_record_exception_count

        return open_record_exception_count(user=user)

    return {"open_record_exceptions": SimpleLazyObject(count)}
