"""The one-query permission backend answers as Django's ModelBackend does."""

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.backends import ModelBackend
from django.contrib.auth.models import Permission

from memberships.auth import StaffBackend
from memberships.roles import CLINICIAN, FRONT_DESK, MANAGER
from tests.factories import staff_user


@pytest.mark.parametrize("role", [FRONT_DESK, CLINICIAN, MANAGER])
def test_same_permissions_as_model_backend(practice, role, django_assert_num_queries):
    user = staff_user(role, practice)
    user.user_permissions.add(Permission.objects.get(codename="view_member"))
    expected = ModelBackend().get_all_permissions(get_user_model().objects.get(pk=user.pk))
    fresh = get_user_model().objects.get(pk=user.pk)
    with django_assert_num_queries(1):
        assert StaffBackend().get_all_permissions(fresh) == expected
        assert fresh.has_perm("memberships.view_chart")
    assert "memberships.view_member" in expected


def test_inactive_and_superuser(practice):
    inactive = staff_user(MANAGER, practice)
    inactive.is_active = False
    assert StaffBackend().get_all_permissions(inactive) == set()
    admin = get_user_model().objects.create_superuser("root", password="x-Pass-2026!")
    assert StaffBackend().get_all_permissions(admin) == ModelBackend().get_all_permissions(
        get_user_model().objects.get(pk=admin.pk))
