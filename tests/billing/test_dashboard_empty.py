"""What the manager reads on the dashboard before anything happened: a sentence saying so for the
breakage months, the staff hours saved and the expiring-credit notices, instead of twelve rows of
zeros, and nothing that claims the notices are off when the practice already sends them."""

import re

import pytest
from django.urls import reverse
from django.utils.html import strip_tags

from memberships.models import AutomationStage

pytestmark = pytest.mark.django_db


def section(html, testid):
    match = re.search(rf'data-testid="{testid}">(.*?)</section>', html, re.S)
    assert match, testid
    return " ".join(strip_tags(match.group(1)).split())


@pytest.mark.parametrize("stage", [AutomationStage.TIER_SYNC, AutomationStage.NOTICES])
def test_an_empty_dashboard_says_nothing_happened_yet(client, practice, manager, stage):
    practice.automation_stage = stage
    practice.save()
    client.force_login(manager)
    html = client.get(reverse("manager:dashboard")).content.decode()
    assert 'data-breakage-month="' not in html and 'data-staff-month="' not in html
    assert "No credit has expired in the last 12 months." in section(html, "breakage-section")
    saved = section(html, "staff-time-section")
    assert "Nothing counted in the last 12 months yet" in saved
    assert "instead of calling to ask what is left, 4 min" in saved          # what will count, still said
    nudges = section(html, "nudges-section")
    assert "No expiring-credit notice has reached a member yet" in nudges
    assert "notices start when the practice moves" not in nudges
