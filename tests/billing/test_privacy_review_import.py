"""The import check's page names ledger members in its errors too (an email or mobile already a
member's, a row that could be one of several namesakes): each one shown leaves an audit row, as the
members its plan lists do."""

from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from memberships.models import AuditLog
from tests.factories import MemberFactory, active_membership

from .test_import_page import submit, tasks_inline  # noqa: F401  (tasks_inline: a fixture)

HEADER = "Member #,First Name,Last Name,Email,Mobile,Membership,Member since,Monthly price,Status\n"


def test_members_named_in_the_checks_errors_are_audited(client, manager, glow, tasks_inline,
                                                        django_capture_on_commit_callbacks):
    tier, *_ = glow
    zelda = MemberFactory(practice=tier.practice, member_number="L0777", first_name="Zelda", last_name="Quixotic",
                          email="zelda@example.com", phone="+14155550177")
    active_membership(tier=tier, member=zelda)
    bystander = MemberFactory(practice=tier.practice, member_number="L0778", last_name="Bystander")
    csv = HEADER + "N900,Yara,Quill,zelda@example.com,,Glow,2025-01-05,199,active\n"
    client.force_login(manager)
    page = submit(client, django_capture_on_commit_callbacks, reverse("mirror:import_upload"),
                  {"file": SimpleUploadedFile("members.csv", csv.encode())})
    text = page.content.decode()
    assert "Quixotic" in text and "L0777" in text          # the error names her
    seen = AuditLog.objects.filter(action="import_detail", user=manager)
    assert set(seen.values_list("member_id", flat=True)) == {zelda.pk}
    assert not AuditLog.objects.filter(member=bystander).exists()
