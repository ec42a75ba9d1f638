"""A practice's membership spreadsheet, in and out: the import that brings the members a practice
kept in a spreadsheet into the ledger, and the spreadsheet-safe cells of what we export. (What the
ledger and the imported sheet disagree on afterwards is `billing.reconciliation`'s.)

The import, in the order it runs:
- `reading`: the file (CSV or XLSX) into a header and rows of cells;
- `layout`: where the members are: the header row under a title, totals lines left out;
- `columns`: which field each column holds (known headers, balance columns, the manager's mapping);
- `values`: each cell's value (dates, amounts, units, yes/no, statuses);
- `rows`: one row into an `ImportRow`, or its errors;
- `checking`: the dry run over the whole file: every problem, and what importing would do (`duplicates`:
  one person on two rows, a processor id another member has);
- `writing`: the planned rows written to the ledger, idempotently, a chunk per transaction;
- `batches`: an upload as a batch on the queue, checked and imported, with progress and a report;
- `views`: the manager's import pages. And `export`: CSV cells a spreadsheet opens as text.
"""
