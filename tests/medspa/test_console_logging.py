"""The console `make run` shows: a 403 or a 404 is one warning line, not a traceback; a 500 keeps its
traceback; Django's lines are printed once."""

import io
import logging
import sys

import pytest

from medspa.log import ClientErrorsOnOneLine


@pytest.fixture
def console():
    """What the configured console handler prints during the test."""
    handler = next(h for h in logging.getLogger().handlers if any(isinstance(f, ClientErrorsOnOneLine)
                                                                 for f in h.filters))
    stream = io.StringIO()
    previous = handler.setStream(stream)
    yield stream
    handler.setStream(previous)


def test_a_403_is_one_warning_line(client, front_desk, console):
    client.force_login(front_desk)

    assert client.get("/manage/").status_code == 403
    assert client.get("/no-such-page/").status_code == 404

    lines = console.getvalue().splitlines()
    assert [line.split(" ", 2)[2] for line in lines] == [
        "WARNING django.request Forbidden (Permission denied): /manage/",
        "WARNING django.request Not Found: /no-such-page/",
    ]


def test_a_server_error_keeps_its_traceback(console):
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        logging.getLogger("django.request").error("Internal Server Error: /x/", exc_info=sys.exc_info(),
                                                  extra={"status_code": 500, "request": None})
    assert "Traceback" in console.getvalue() and "RuntimeError: boom" in console.getvalue()


def test_a_client_error_logged_as_an_error_is_a_warning_without_traceback(console):
    try:
        raise ValueError("bad host header")
    except ValueError:
        logging.getLogger("django.security.DisallowedHost").error("Invalid HTTP_HOST header", exc_info=sys.exc_info(),
                                                                  extra={"status_code": 400, "request": None})
    output = console.getvalue()
    assert output.count("\n") == 1 and "WARNING django.security.DisallowedHost Invalid HTTP_HOST header" in output


def test_django_lines_are_printed_once_even_with_debug():
    assert logging.getLogger("django").handlers == []
