//! How the enums of [`crate::states`] are written to and read from SQLite:
//! as their text; a text that names none of an enum's values is an
//! [`UnknownValue`] naming the table, the row and the value, never a default.

use crate::policy::OnFailure;
use crate::states::{
    ActionState, AuditRequestKind, AuditState, AuditType, EventType, ExecutionRule, FlowState,
    ObjectState, ObjectType, PlanState, UnknownName,
};
use rusqlite::types::{ToSql, ToSqlOutput, ValueRef};
use std::str::FromStr;

/// A value read from the database that its column's enum does not know.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("table {table}, row {row}, column {column}: {name}")]
pub struct UnknownValue {
    /// The table.
    pub table: &'static str,
    /// The row's id.
    pub row: i64,
    /// The column.
    pub column: &'static str,
    /// What it holds, and which enum it is not.
    pub name: UnknownName,
}

macro_rules! to_sql_as_text {
    ($($t:ty),+) => {$(
        impl ToSql for $t {
            fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
                Ok(ToSqlOutput::Borrowed(ValueRef::Text(self.as_str().as_bytes())))
            }
        }
    )+};
}

to_sql_as_text!(
    ActionState,
    AuditRequestKind,
    AuditType,
    PlanState,
    AuditState,
    EventType,
    ExecutionRule,
    FlowState,
    ObjectType,
    OnFailure
);

/// Reads column `idx` of `r` as an enum `T`; the row's id is in column
/// `id_idx`, for the error.
pub(super) fn enum_col<T: FromStr<Err = UnknownName>>(
    r: &rusqlite::Row<'_>,
    idx: usize,
    id_idx: usize,
    table: &'static str,
    column: &'static str,
) -> rusqlite::Result<T> {
    let text: String = r.get(idx)?;
    text.parse()
        .map_err(|name| unknown(r, idx, id_idx, table, column, name))
}

/// Reads column `idx` of `r` (text or NULL) as the state of an object of
/// kind `kind` (an event's old or new state); the row's id is in column
/// `id_idx`, for the error.
pub(super) fn object_state_col(
    r: &rusqlite::Row<'_>,
    idx: usize,
    id_idx: usize,
    kind: ObjectType,
    table: &'static str,
    column: &'static str,
) -> rusqlite::Result<Option<ObjectState>> {
    let Some(text) = r.get::<_, Option<String>>(idx)? else {
        return Ok(None);
    };
    ObjectState::parse(kind, &text)
        .map(Some)
        .map_err(|name| unknown(r, idx, id_idx, table, column, name))
}

/// The error of a column `idx` of `r` that names no value of its enum.
fn unknown(
    r: &rusqlite::Row<'_>,
    idx: usize,
    id_idx: usize,
    table: &'static str,
    column: &'static str,
    name: UnknownName,
) -> rusqlite::Error {
    let row = r.get::<_, i64>(id_idx).unwrap_or(-1);
    rusqlite::Error::FromSqlConversionFailure(
        idx,
        rusqlite::types::Type::Text,
        Box::new(UnknownValue {
            table,
            row,
            column,
            name,
        }),
    )
}

/// The [`UnknownValue`] inside a rusqlite error, if that is what it is.
pub(super) fn unknown_value(e: &rusqlite::Error) -> Option<UnknownValue> {
    match e {
        rusqlite::Error::FromSqlConversionFailure(_, _, inner) => {
            inner.downcast_ref::<UnknownValue>().cloned()
        }
        _ => None,
    }
}
