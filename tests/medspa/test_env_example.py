"""Every setting read from the environment is listed in .env.example (and so documented)."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_every_environment_setting_is_in_env_example():
    read = set()
    for path in (ROOT / "medspa" / "settings").glob("*.py"):
        read |= set(re.findall(r'\benv(?:\.[a-z_]+)?\(\s*"([A-Z][A-Z0-9_]*)"', path.read_text()))
    listed = set(re.findall(r"^#?\s?([A-Z][A-Z0-9_]*)=", (ROOT / ".env.example").read_text(), re.M))
    assert {"TRUSTED_PROXY_COUNT", "STAFF_SESSION_IDLE_MINUTES", "CHART_FRAME_ANCESTORS"} <= read
    assert sorted(read - listed) == []
