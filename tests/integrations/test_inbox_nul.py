"""`has_nul` (the webhook views' refusal of a body PostgreSQL's jsonb cannot hold) answers exactly as
the full scan does, whatever the body: its substring pre-check only skips the scan when it cannot
match."""

import pytest
from hypothesis import given, settings as hypothesis_settings, strategies as st

from integrations.intake import _NUL, has_nul

FRAGMENTS = [b"\\", b"\\\\", b"u", b"0", b"0000", b"\\u0000", b"\\u00000", b"\x00", b"a", b'"', b"\\u0001"]


@hypothesis_settings(max_examples=500, deadline=None, database=None)
@given(st.lists(st.sampled_from(FRAGMENTS), max_size=24).map(b"".join))
def test_has_nul_answers_as_the_full_scan(body):
    assert has_nul(body) is (_NUL.search(body) is not None)


@pytest.mark.parametrize("body, expected", [
    (b'{"description": "ok"}', False),
    (b'{"description": "bad\\u0000byte"}', True),         # the JSON escape of U+0000
    (b'{"description": "bad\\\\u0000byte"}', False),      # an escaped backslash, then text "u0000"
    (b'{"description": "bad\\\\\\u0000byte"}', True),     # an escaped backslash, then the escape
    (b'{"description": "bad\x00byte"}', True),            # a raw NUL byte
])
def test_has_nul_on_json_bodies(body, expected):
    assert has_nul(body) is expected
