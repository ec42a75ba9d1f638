"""A staff session's expiry moves on with its requests, written at most once a minute
(memberships.session_touch): a page is not a database write, the idle limit still holds, and a
change to the session is saved at once."""

from datetime import timedelta

from django.contrib.sessions.models import Session
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

PASSWORD = "pw-Staff-2026!"


def _signed_in(user):
    client = Client()
    client.post(reverse("memberships:login"), {"username": user.username, "password": PASSWORD})
    return client


def _expiry(client):
    return Session.objects.get(session_key=client.session.session_key).expire_date


def _session_writes(ctx):
    return [q["sql"] for q in ctx.captured_queries
            if "django_session" in q["sql"] and not q["sql"].lstrip().upper().startswith("SELECT")]


def test_pages_within_a_minute_write_no_session_and_the_next_minute_moves_the_expiry_on(
        front_desk, time_machine, settings):
    start = timezone.now()
    time_machine.move_to(start, tick=False)
    client = _signed_in(front_desk)
    first = _expiry(client)
    time_machine.move_to(start + timedelta(seconds=20), tick=False)
    with CaptureQueriesContext(connection) as ctx:
        for _ in range(5):
            assert client.get("/", {"q": "garcia"}).status_code == 200
    assert _session_writes(ctx) == [] and _expiry(client) == first
    time_machine.move_to(start + timedelta(seconds=70), tick=False)
    assert client.get("/").status_code == 200
    assert _expiry(client) == first + timedelta(seconds=70)


def test_a_session_idle_for_the_limit_ends_even_after_pages_inside_a_minute(front_desk, time_machine, settings):
    start = timezone.now()
    time_machine.move_to(start, tick=False)
    client = _signed_in(front_desk)
    time_machine.move_to(start + timedelta(seconds=30), tick=False)
    assert client.get("/").status_code == 200                          # not written: under a minute
    time_machine.move_to(start + timedelta(minutes=settings.STAFF_SESSION_IDLE_MINUTES, seconds=1), tick=False)
    response = client.get("/")
    assert response.status_code == 302 and response["Location"].startswith(reverse("memberships:login"))


def test_a_change_to_the_session_is_saved_at_once(front_desk, time_machine):
    start = timezone.now()
    time_machine.move_to(start, tick=False)
    client = _signed_in(front_desk)
    time_machine.move_to(start + timedelta(seconds=5), tick=False)
    client.post(reverse("memberships:logout"))
    assert not Session.objects.filter(expire_date__gt=timezone.now()).exclude(
        session_data="").filter(session_key=client.cookies.get("sessionid").value).exists()
    assert client.get("/").status_code == 302
