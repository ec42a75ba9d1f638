"""Reconciliation: the ledger compared, member by member, with the last imported spreadsheet, the
processor and the record, each read through its API and never written to; what differs is kept as
discrepancies across runs until a manager resolves them or they go away.

- `compare`: the pure comparison over snapshots of the sides (no database, no network);
- `snapshots`: the ledger's and the sheet's snapshots, and the sources `integrations` registers
  for the processor's and the record's;
- `runs`: a run for a practice, and a discrepancy resolved;
- `selectors`: reads for the pages and the dashboard; `views`: the manager's reconciliation pages.
"""
