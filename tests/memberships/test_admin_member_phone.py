"""A mobile number a manager types into a member's admin page is kept as every other door keeps it
(E.164): written "(626) 555-0100", it is still the number the member's "send me a link" by mobile,
a STOP reply from that phone and joining online find."""

import pytest
from django.forms.models import model_to_dict

from memberships.admin import MemberAdmin
from memberships.models import Member
from portal.models import MemberLink
from tests.factories import MemberFactory
from tests.portal.me_support import send_link

pytestmark = pytest.mark.django_db


def _save(member, phone):
    from django.contrib import admin
    from django.contrib.auth import get_user_model
    from django.test import RequestFactory

    request = RequestFactory().get("/admin/")
    request.user = get_user_model()(is_superuser=True, is_staff=True)
    form_class = MemberAdmin(Member, admin.site).get_form(request, obj=member)
    data = {k: ("" if v is None else v) for k, v in model_to_dict(member).items()}
    data.update(phone=phone, practice=member.practice_id)
    form = form_class(data=data, instance=member)
    if form.is_valid():
        form.save()
    return form


def test_a_number_typed_as_people_write_it_is_stored_as_the_member_page_looks_it_up(glow):
    member = MemberFactory(practice=glow[0].practice, phone="", sms_consent=True)
    assert _save(member, "(626) 555-0100").is_valid()
    assert Member.objects.get(pk=member.pk).phone == "+16265550100"
    assert len(send_link("626.555.0100")) == 1 and MemberLink.objects.get().member_id == member.pk


def test_a_number_that_is_none_is_refused_and_nothing_changes(glow):
    member = MemberFactory(practice=glow[0].practice, phone="+16265550100")
    form = _save(member, "555-01")
    assert not form.is_valid() and "phone" in form.errors
    assert Member.objects.get(pk=member.pk).phone == "+16265550100"
