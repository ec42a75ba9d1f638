"""The import check's page names ledger members in its errors too (an email or mobile already a
member's, a row that could be one of several namesakes, a row matched to her by email whose name is
someone else's, two refused rows matched to her): each one shown leaves an audit row, as the members
its plan lists do."""

from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from memberships.models import AuditLog
from tests.factories import MemberFactory, active_membership

from .test_import_page import submit, tasks_inline  # noqa: F401  (tasks_inline: a fixture)

HEADER = "Member #,First Name,Last Name,Email,Mobile,Membership,Member since,Monthly price,Status\n"


def _zelda(tier):
    return MemberFactory(practice=tier.practice, member_number="L0777", first_name="Zelda", last_name="Quixotic",
                         email="zelda@example.com", phone="+14155550177")


def _check(client, manager, capture, rows: str) -> tuple[str, set]:
    """The manager checks a sheet of these rows: the page's text, and the members her view audited."""
    client.force_login(manager)
    page = submit(client, capture, reverse("mirror:import_upload"),
                  {"file": SimpleUploadedFile("members.csv", (HEADER + rows).encode())})
    seen = AuditLog.objects.filter(action="import_detail", user=manager)
    return page.content.decode(), set(seen.values_list("member_id", flat=True))


def test_members_named_in_the_checks_errors_are_audited(client, manager, glow, tasks_inline,
                                                        django_capture_on_commit_callbacks):
    tier, *_ = glow
    zelda = _zelda(tier)
    active_membership(tier=tier, member=zelda)
    bystander = MemberFactory(practice=tier.practice, member_number="L0778", last_name="Bystander")
    text, audited = _check(client, manager, django_capture_on_commit_callbacks,
                           "N900,Yara,Quill,zelda@example.com,,Glow,2025-01-05,199,active\n")
    assert "Quixotic" in text and "L0777" in text          # the error names her
    assert audited == {zelda.pk}
    assert not AuditLog.objects.filter(member=bystander).exists()


def test_a_member_whose_email_a_row_of_another_name_gives_is_audited(client, manager, glow, tasks_inline,
                                                                    django_capture_on_commit_callbacks):
    tier, *_ = glow
    zelda = _zelda(tier)
    active_membership(tier=tier, member=zelda)
    bystander = MemberFactory(practice=tier.practice, member_number="L0778", last_name="Bystander")
    text, audited = _check(client, manager, django_capture_on_commit_callbacks,
                           ",Yara,Quill,zelda@example.com,,Glow,2025-01-05,199,active\n")
    assert "that of Zelda Quixotic (L0777)" in text
    assert audited == {zelda.pk}
    assert not AuditLog.objects.filter(member=bystander).exists()


def test_a_member_two_refused_rows_are_matched_to_is_audited(client, manager, glow, tasks_inline,
                                                             django_capture_on_commit_callbacks):
    tier, *_ = glow
    zelda = _zelda(tier)
    text, audited = _check(client, manager, django_capture_on_commit_callbacks,
                           ",Zelda,Quixotic,zelda@example.com,,Glow,2025-01-05,199,paused\n"
                           ",Zelda,Quixotic,zelda@example.com,,Glow,2025-01-05,199,active\n")
    assert "duplicate member: L0777 is already on line 2" in text
    assert audited == {zelda.pk}
