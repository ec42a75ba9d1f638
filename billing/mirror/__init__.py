"""The money side's write operations and the mirror's jobs (import, reconciliation, rollout)."""

from .imports import (
    ImportCheck,
    RowError,
    apply_import,
    check_import,
    column_rows,
    create_import_batch,
    run_import_batch,
)

__all__ = [
    "ImportCheck",
    "RowError",
    "apply_import",
    "check_import",
    "column_rows",
    "create_import_batch",
    "run_import_batch",
]
