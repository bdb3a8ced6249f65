//! The store's interface on PostgreSQL: [`StoreBackend`] for [`PgStore`],
//! each operation the inherent method of the `pg_*` file of its concern,
//! forwarded by `forward_to_inherent!` (its list of operations and the
//! SQLite backend's impl are in `backend.rs`).

use super::apply::{ActionTransition, Lease};
use super::audits::{AuditChanges, AuditRow, NewAudit, NewTemplate, TemplateRow};
use super::backend::forward_to_inherent;
use super::flows::{FlowChange, FlowRow, PlanStructure, ScopeMark, ScopeRow};
use super::ids::IdKind;
use super::lifecycle::TemplateChange;
use super::outbox::{SinkCursor, Subjects};
use super::pg::PgStore;
use super::plans::{ActionRow, NewPlan, PlanRow};
use super::sync::{DiscoveredGoal, DiscoveredStrategy, SyncReport};
use super::{EventRow, GoalRow, Result, StoreBackend, StrategyRow};
use crate::states::{ActionState, AuditState, EventType, PlanState};
use serde_json::Value;
use std::path::Path;

impl StoreBackend for PgStore {
    /// PostgreSQL's shared buffers are the server's: nothing to limit in
    /// this process.
    fn limit_cache(&self, _kib: u32) -> Result<()> {
        Ok(())
    }

    /// No WAL checkpoint is this process's business on PostgreSQL.
    fn wait_for_checkpoints(&self) {}

    fn file(&self) -> Option<&Path> {
        None
    }

    fn location(&self) -> String {
        PgStore::location(self).to_string()
    }

    forward_to_inherent!(PgStore);
}
