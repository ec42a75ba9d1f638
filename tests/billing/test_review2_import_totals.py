"""A member whose name starts like a totals line ('Sum Yee Wong', 'Count Basie') is a member: her
line has a tier and a join date, which a totals line under the members never has."""

from billing.models import ImportStatus
from memberships.models import Member

from .test_import_real_sheets import command, errors


def test_a_member_named_like_a_totals_line_is_imported_and_the_totals_line_still_left_out(glow, practice,
                                                                                          tmp_path):
    sheet = ("Name,Mobile,Plan,Member Since,Monthly\r\n"
             "Sum Yee Wong,(415) 555-0101,Glow,1/3/2024,$199.00\r\n"
             "Cy Park,(415) 555-0102,Glow,1/4/2024,$199.00\r\n"
             "Total,,,,\"$398.00\"\r\n").encode()
    out, batch = command(tmp_path, sheet)
    assert batch.status == ImportStatus.IMPORTED, errors(batch)
    assert sorted(Member.objects.values_list("first_name", "last_name")) == [("Cy", "Park"), ("Sum Yee", "Wong")]
    assert "Line 4 left out: a totals line ('Total'), not a member" in out
    assert "Line 2 left out" not in out
