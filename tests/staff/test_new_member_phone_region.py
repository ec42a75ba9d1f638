"""The front desk's new-member page reads a mobile number written without a country code in the
practice's country (IMPORT_PHONE_REGION), as the join page, the admin and "send me a link" do: a
practice outside the US can enroll its members with the numbers they give."""

import pytest
from django.urls import reverse

from memberships.models import Member

from .test_lifecycle_pages import desk, flow  # noqa: F401  (fixtures)

pytestmark = pytest.mark.django_db


def test_a_national_mobile_is_taken_where_the_practice_is(desk, glow, settings):  # noqa: F811
    settings.IMPORT_PHONE_REGION = "GB"
    tier, *_ = glow
    html, done, _ = flow(desk, reverse("memberships:enroll_new"), {
        "first_name": "Maya", "last_name": "Lopez", "email": "maya@example.com", "phone": "07911 123456",
        "sms_consent": "on", "tier": tier.pk})
    assert done.status_code == 302
    assert Member.objects.get(last_name="Lopez").phone == "+447911123456"
