"""Engine state on disk: the state directory convention and the SQLite state store."""

from rules_engine.state.paths import (
    AUDIT_FILE,
    DATABASE_FILE,
    ENV_VAR,
    add_state_dir_argument,
    audit_log_path,
    database_path,
    default_state_dir,
    ensure_state_dir,
    resolve_state_dir,
)
from rules_engine.state.store import (
    FINAL_STATUSES,
    OUTCOME_STATUSES,
    SCHEMA_VERSION,
    STATUSES,
    UNRESOLVED_STATUSES,
    DecisionConflictError,
    OrderRecord,
    StateStore,
    StateStoreError,
    UnknownDecisionError,
)

__all__ = [
    "AUDIT_FILE",
    "DATABASE_FILE",
    "ENV_VAR",
    "add_state_dir_argument",
    "audit_log_path",
    "database_path",
    "default_state_dir",
    "ensure_state_dir",
    "resolve_state_dir",
    "FINAL_STATUSES",
    "OUTCOME_STATUSES",
    "SCHEMA_VERSION",
    "STATUSES",
    "UNRESOLVED_STATUSES",
    "DecisionConflictError",
    "OrderRecord",
    "StateStore",
    "StateStoreError",
    "UnknownDecisionError",
]
