"""Money written in a balance column that counts treatments or units is refused, not read as that
many treatments: '$150 credit' in the Botox column was 150 units of Botox."""

from billing.models import ImportStatus
from memberships.models import Membership

from .test_import_real_sheets import command, errors, ledger_counts


def test_money_in_a_column_counting_treatments_is_refused_and_a_credit_column_still_reads_it(glow, practice,
                                                                                             tmp_path):
    header = "Name,Email,Plan,Member Since,HydraFacials left,Product credit balance\r\n"
    money = ("Renée Dubois,renee@example.com,Glow,1/3/2024,$150 credit,\r\n"
             "Cy Park,cy@example.com,Glow,1/3/2024,$75,\r\n"
             "Di Park,di@example.com,Glow,1/3/2024,40 dollars,\r\n")
    out, batch = command(tmp_path, (header + money).encode())
    assert batch.status == ImportStatus.REJECTED
    assert [(line, column) for line, column, _ in errors(batch)] == [
        (2, "HydraFacials left"), (3, "HydraFacials left"), (4, "HydraFacials left")]
    assert errors(batch)[0][2] == ("'$150 credit' is an amount of money, but HydraFacial is counted in treatments "
                                   "or units: write the HydraFacial balance as a number")
    assert ledger_counts() == (0, 0, 0, 0)
    fine = "Renée Dubois,renee@example.com,Glow,1/3/2024,2 facials,$150 credit\r\n"
    out, batch = command(tmp_path, (header + fine).encode())
    assert batch.status == ImportStatus.IMPORTED, errors(batch)
    assert {b.service.code: b.balance for b in Membership.objects.get().balances.all()} == {
        "hydrafacial": 2, "product-credit": 15000}
