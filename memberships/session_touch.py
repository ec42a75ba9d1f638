"""Idle sessions end after STAFF_SESSION_IDLE_MINUTES: each save moves the session's expiry on by
SESSION_COOKIE_AGE. Saving it on every request (Django's SESSION_SAVE_EVERY_REQUEST) costs a write
and a commit per page, the most expensive part of a quick page such as the member search; so a
signed-in session is saved when something in it changed, or at most once every TOUCH_SECONDS to
move its expiry on. An idle session thus ends between STAFF_SESSION_IDLE_MINUTES minus
TOUCH_SECONDS and STAFF_SESSION_IDLE_MINUTES after its last request."""

from __future__ import annotations

import time

TOUCHED = "_touched"
TOUCH_SECONDS = 60


class SessionTouchMiddleware:
    """Placed after SessionMiddleware: marks the session to be saved when its last save is
    TOUCH_SECONDS old (or unknown)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        session = getattr(request, "session", None)
        if session is None or session.is_empty():
            return response
        now = int(time.time())
        last = session.get(TOUCHED)
        if session.modified or not isinstance(last, int) or not 0 <= now - last < TOUCH_SECONDS:
            session[TOUCHED] = now
        return response
