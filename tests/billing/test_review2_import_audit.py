"""The import check's page names a ledger member in the error of a row matched to her by email
whose name is someone else's ('that of Zelda Quixotic (L0777)'): she leaves an audit row, as the
members its other errors and its plan name do."""

from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from memberships.models import AuditLog
from tests.factories import MemberFactory, active_membership

from .test_import_page import submit, tasks_inline  # noqa: F401  (tasks_inline: a fixture)

HEADER = "Member #,First Name,Last Name,Email,Mobile,Membership,Member since,Monthly price,Status\n"


def test_a_member_whose_email_a_row_of_another_name_gives_is_audited(client, manager, glow, tasks_inline,
                                                                    django_capture_on_commit_callbacks):
    tier, *_ = glow
    zelda = MemberFactory(practice=tier.practice, member_number="L0777", first_name="Zelda", last_name="Quixotic",
                          email="zelda@example.com", phone="+14155550177")
    active_membership(tier=tier, member=zelda)
    bystander = MemberFactory(practice=tier.practice, member_number="L0778", last_name="Bystander")
    csv = HEADER + ",Yara,Quill,zelda@example.com,,Glow,2025-01-05,199,active\n"
    client.force_login(manager)
    page = submit(client, django_capture_on_commit_callbacks, reverse("mirror:import_upload"),
                  {"file": SimpleUploadedFile("members.csv", csv.encode())})
    text = page.content.decode()
    assert "that of Zelda Quixotic (L0777)" in text
    seen = AuditLog.objects.filter(action="import_detail", user=manager)
    assert set(seen.values_list("member_id", flat=True)) == {zelda.pk}
    assert not AuditLog.objects.filter(member=bystander).exists()


def test_a_member_two_refused_rows_are_matched_to_is_audited(client, manager, glow, tasks_inline,
                                                             django_capture_on_commit_callbacks):
    tier, *_ = glow
    zelda = MemberFactory(practice=tier.practice, member_number="L0777", first_name="Zelda", last_name="Quixotic",
                          email="zelda@example.com", phone="+14155550177")
    csv = HEADER + (",Zelda,Quixotic,zelda@example.com,,Glow,2025-01-05,199,paused\n"
                    ",Zelda,Quixotic,zelda@example.com,,Glow,2025-01-05,199,active\n")
    client.force_login(manager)
    page = submit(client, django_capture_on_commit_callbacks, reverse("mirror:import_upload"),
                  {"file": SimpleUploadedFile("members.csv", csv.encode())})
    assert "duplicate member: L0777 is already on line 2" in page.content.decode()
    seen = AuditLog.objects.filter(action="import_detail", user=manager)
    assert set(seen.values_list("member_id", flat=True)) == {zelda.pk}
