//! How the PostgreSQL backend talks to its database: statement arguments
//! that fit whichever integer, text or boolean column PostgreSQL infers
//! for them ([`Arg`]), integers read from any integer column ([`Int`]),
//! enums read back as [`StoreError::Unknown`] naming table, row and column,
//! and [`Sql`], one connection or transaction with the store's errors.

use super::pg::pg_error;
use super::{Result, StoreError, UnknownValue};
use crate::states::UnknownName;
use bytes::BytesMut;
use postgres::GenericClient;
use postgres::types::{FromSql, IsNull, ToSql, Type, to_sql_checked};
use std::collections::HashMap;
use std::error::Error;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;

type BoxError = Box<dyn Error + Sync + Send>;

/// One statement argument. PostgreSQL infers each parameter's type from
/// where it is used (an `INTEGER` flag, a `BIGINT` id, a `TEXT` column, a
/// `CASE WHEN $n` boolean): an `Arg` is encoded as that type.
#[derive(Debug, Clone, Copy)]
pub(super) enum Arg<'a> {
    /// SQL NULL.
    Null,
    /// An integer (or a boolean, as 0 or 1).
    Int(i64),
    /// A float.
    Float(f64),
    /// A text.
    Text(&'a str),
    /// A list of texts (`= ANY($n)`).
    Texts(&'a [String]),
}

impl ToSql for Arg<'_> {
    fn to_sql(&self, ty: &Type, out: &mut BytesMut) -> std::result::Result<IsNull, BoxError> {
        match *self {
            Arg::Null => Ok(IsNull::Yes),
            Arg::Int(v) => match *ty {
                Type::INT2 => i16::try_from(v)?.to_sql(ty, out),
                Type::INT4 => i32::try_from(v)?.to_sql(ty, out),
                Type::BOOL => (v != 0).to_sql(ty, out),
                Type::FLOAT8 => (v as f64).to_sql(ty, out),
                Type::TEXT | Type::VARCHAR => v.to_string().to_sql(ty, out),
                _ => v.to_sql(ty, out),
            },
            Arg::Float(v) => match *ty {
                Type::FLOAT4 => (v as f32).to_sql(ty, out),
                _ => v.to_sql(ty, out),
            },
            Arg::Text(s) => s.to_sql(ty, out),
            Arg::Texts(l) => l.to_sql(ty, out),
        }
    }

    fn accepts(_: &Type) -> bool {
        true
    }

    to_sql_checked!();
}

/// What can be a statement argument.
pub(super) trait ToArg {
    /// As an argument.
    fn arg(&self) -> Arg<'_>;
}

impl<T: ToArg + ?Sized> ToArg for &T {
    fn arg(&self) -> Arg<'_> {
        (**self).arg()
    }
}

impl ToArg for str {
    fn arg(&self) -> Arg<'_> {
        Arg::Text(self)
    }
}

impl ToArg for String {
    fn arg(&self) -> Arg<'_> {
        Arg::Text(self)
    }
}

impl ToArg for i64 {
    fn arg(&self) -> Arg<'_> {
        Arg::Int(*self)
    }
}

impl ToArg for u32 {
    fn arg(&self) -> Arg<'_> {
        Arg::Int(i64::from(*self))
    }
}

impl ToArg for usize {
    fn arg(&self) -> Arg<'_> {
        Arg::Int(i64::try_from(*self).unwrap_or(i64::MAX))
    }
}

impl ToArg for bool {
    fn arg(&self) -> Arg<'_> {
        Arg::Int(i64::from(*self))
    }
}

impl ToArg for f64 {
    fn arg(&self) -> Arg<'_> {
        Arg::Float(*self)
    }
}

impl ToArg for [String] {
    fn arg(&self) -> Arg<'_> {
        Arg::Texts(self)
    }
}

impl ToArg for Vec<String> {
    fn arg(&self) -> Arg<'_> {
        Arg::Texts(self)
    }
}

impl<T: ToArg> ToArg for Option<T> {
    fn arg(&self) -> Arg<'_> {
        match self {
            Some(v) => v.arg(),
            None => Arg::Null,
        }
    }
}

macro_rules! enum_arg {
    ($($t:ty),+) => {$(
        impl ToArg for $t {
            fn arg(&self) -> Arg<'_> {
                Arg::Text(self.as_str())
            }
        }
    )+};
}

enum_arg!(
    crate::states::ActionState,
    crate::states::PlanState,
    crate::states::AuditState,
    crate::states::AuditType,
    crate::states::EventType,
    crate::states::FlowState,
    crate::states::ObjectType,
    crate::policy::OnFailure
);

/// The arguments of a statement: `args![a, b]`.
macro_rules! args {
    ($($a:expr),* $(,)?) => {
        &[$($crate::store::pg_sql::ToArg::arg(&$a)),*]
    };
}
pub(super) use args;

/// An integer read from any integer column (`INTEGER` flags, `BIGINT` ids,
/// `count(*)`).
#[derive(Debug, Clone, Copy)]
pub(super) struct Int(pub i64);

impl<'a> FromSql<'a> for Int {
    fn from_sql(ty: &Type, raw: &'a [u8]) -> std::result::Result<Self, BoxError> {
        Ok(Int(match *ty {
            Type::INT2 => i64::from(i16::from_sql(ty, raw)?),
            Type::INT4 => i64::from(i32::from_sql(ty, raw)?),
            _ => i64::from_sql(ty, raw)?,
        }))
    }

    fn accepts(ty: &Type) -> bool {
        matches!(*ty, Type::INT2 | Type::INT4 | Type::INT8)
    }
}

/// A row a query read, with where it came from: its columns are read with
/// [`PgRow::get`], which says which column of which query of which
/// database has a type other than the one asked for (a database edited by
/// hand), where `postgres::Row::get` would panic.
pub(super) struct PgRow {
    row: postgres::Row,
    from: Arc<RowSource>,
}

/// The database and query rows came from.
struct RowSource {
    location: String,
    query: String,
}

impl RowSource {
    fn new(location: &str, query: &str) -> Arc<Self> {
        Arc::new(RowSource {
            location: location.to_string(),
            query: query.split_whitespace().collect::<Vec<_>>().join(" "),
        })
    }
}

impl PgRow {
    /// The rows `query` read from the database at `location`.
    pub(super) fn all(location: &str, query: &str, rows: Vec<postgres::Row>) -> Vec<PgRow> {
        let from = RowSource::new(location, query);
        rows.into_iter()
            .map(|row| PgRow {
                row,
                from: Arc::clone(&from),
            })
            .collect()
    }

    /// The one row `query` read from the database at `location`.
    pub(super) fn one(location: &str, query: &str, row: postgres::Row) -> PgRow {
        PgRow {
            row,
            from: RowSource::new(location, query),
        }
    }

    /// Column `i`, as a `T`; [`StoreError::Column`] when its type is not
    /// one `T` reads.
    pub(super) fn get<'r, T: FromSql<'r>>(&'r self, i: usize) -> Result<T> {
        self.row.try_get(i).map_err(|e| {
            let column = self
                .row
                .columns()
                .get(i)
                .map_or_else(|| format!("#{i}"), |c| c.name().to_string());
            StoreError::Column {
                path: PathBuf::from(&self.from.location),
                query: self.from.query.clone(),
                column,
                // The driver's message says which column, its source
                // which types.
                cause: e
                    .source()
                    .map_or_else(|| e.to_string(), |why| why.to_string()),
            }
        })
    }
}

/// Column `i` of `r`, an integer.
pub(super) fn int(r: &PgRow, i: usize) -> Result<i64> {
    Ok(r.get::<Int>(i)?.0)
}

/// Column `i` of `r`, an integer or NULL.
pub(super) fn opt_int(r: &PgRow, i: usize) -> Result<Option<i64>> {
    Ok(r.get::<Option<Int>>(i)?.map(|v| v.0))
}

/// Column `i` of `r`, an integer flag, as a boolean.
pub(super) fn flag(r: &PgRow, i: usize) -> Result<bool> {
    Ok(int(r, i)? != 0)
}

/// `text`, read from `table`'s row `row` of the database at `location`, as
/// an enum `T`.
pub(super) fn parse_enum<T: FromStr<Err = UnknownName>>(
    location: &str,
    text: &str,
    table: &'static str,
    row: i64,
    column: &'static str,
) -> Result<T> {
    text.parse()
        .map_err(|name| unknown_value(location, table, row, column, name))
}

/// The error of `table`'s row `row` of the database at `location` whose
/// `column` names no value of its enum.
pub(super) fn unknown_value(
    location: &str,
    table: &'static str,
    row: i64,
    column: &'static str,
    name: UnknownName,
) -> StoreError {
    StoreError::Unknown {
        path: PathBuf::from(location),
        value: UnknownValue {
            table,
            row,
            column,
            name,
        },
    }
}

/// One connection or transaction, reporting errors as the store's. Each
/// statement is prepared once per connection ([`Statements`]): a round
/// trip saved on every later run (the applier's commits run the same few).
pub(super) struct Sql<'a, C> {
    pub(super) c: &'a mut C,
    pub(super) location: &'a str,
    pub(super) statements: &'a Statements,
}

/// The statements a connection has prepared, by their text.
#[derive(Default)]
pub(super) struct Statements(std::cell::RefCell<HashMap<String, postgres::Statement>>);

/// How many prepared statements a connection keeps (the store runs a few
/// dozen texts; plans of many sizes add one multi-row insert each).
const MAX_STATEMENTS: usize = 256;

/// The longest statement text kept prepared: a plan's multi-row inserts
/// (up to 1,000 rows of parameters) are run once each, not kept.
const MAX_CACHED_TEXT: usize = 4096;

fn refs<'a>(args: &'a [Arg<'a>]) -> Vec<&'a (dyn ToSql + Sync)> {
    args.iter().map(|a| a as &(dyn ToSql + Sync)).collect()
}

impl<C: GenericClient> Sql<'_, C> {
    /// A driver error as the store's.
    pub(super) fn err(&self, e: postgres::Error) -> StoreError {
        pg_error(self.location, e)
    }

    /// Every row `sql` selects.
    pub(super) fn rows(&mut self, sql: &str, args: &[Arg<'_>]) -> Result<Vec<PgRow>> {
        let st = self.prepare(sql)?;
        let r = self.c.query(&st, &refs(args));
        Ok(PgRow::all(self.location, sql, r.map_err(|e| self.err(e))?))
    }

    /// The row `sql` selects, if any.
    pub(super) fn opt(&mut self, sql: &str, args: &[Arg<'_>]) -> Result<Option<PgRow>> {
        let st = self.prepare(sql)?;
        let r = self.c.query_opt(&st, &refs(args));
        let r = r.map_err(|e| self.err(e))?;
        Ok(r.map(|row| PgRow::one(self.location, sql, row)))
    }

    /// The one row `sql` selects.
    pub(super) fn one(&mut self, sql: &str, args: &[Arg<'_>]) -> Result<PgRow> {
        let st = self.prepare(sql)?;
        let r = self.c.query_one(&st, &refs(args));
        let r = r.map_err(|e| self.err(e))?;
        Ok(PgRow::one(self.location, sql, r))
    }

    /// Runs `sql`; how many rows it changed.
    pub(super) fn exec(&mut self, sql: &str, args: &[Arg<'_>]) -> Result<u64> {
        let st = self.prepare(sql)?;
        let r = self.c.execute(&st, &refs(args));
        r.map_err(|e| self.err(e))
    }

    /// The statement of `sql`, prepared on this connection once.
    pub(super) fn prepare(&mut self, sql: &str) -> Result<postgres::Statement> {
        if let Some(st) = self.statements.0.borrow().get(sql) {
            return Ok(st.clone());
        }
        let st = self.c.prepare(sql).map_err(|e| self.err(e))?;
        if sql.len() > MAX_CACHED_TEXT {
            return Ok(st);
        }
        let mut cache = self.statements.0.borrow_mut();
        if cache.len() >= MAX_STATEMENTS {
            cache.clear();
        }
        cache.insert(sql.to_string(), st.clone());
        Ok(st)
    }

    /// Column `i` of `r` as an enum `T`, the row's id in column `id`.
    pub(super) fn enum_col<T: FromStr<Err = UnknownName>>(
        &self,
        r: &PgRow,
        i: usize,
        id: usize,
        table: &'static str,
        column: &'static str,
    ) -> Result<T> {
        let text: String = r.get(i)?;
        parse_enum(
            self.location,
            &text,
            table,
            opt_int(r, id)?.unwrap_or(-1),
            column,
        )
    }

    /// Appends one event (see `mod.rs`'s `append_event`).
    pub(super) fn event(&mut self, e: &super::Event<'_>, at: &str) -> Result<()> {
        let payload = if e.payload.is_null() {
            "{}".to_string()
        } else {
            crate::json_text(&e.payload)
        };
        self.exec(
            "INSERT INTO events (at, event_type, object_type, object_uuid, action_plan_uuid, \
             old_state, new_state, payload) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            args![
                at,
                e.event_type,
                e.event_type.object_type().as_str(),
                e.object_uuid,
                e.action_plan_uuid,
                e.old_state,
                e.new_state,
                payload
            ],
        )?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::store::pg::PgStore;
    use crate::store::testing::TestStore;
    use crate::store::{Location, Store, StoreError};

    /// A store on `t`'s database with no statement prepared yet (one
    /// prepared before a column's type changed fails as a whole: "cached
    /// plan must not change result type").
    fn reopened(t: &TestStore) -> Store {
        let Location::Postgres(url) = &t.location else {
            panic!("a PostgreSQL store")
        };
        Store::from_backend(Box::new(PgStore::open(url).expect("open")))
    }

    /// A column of another type than the one the store reads (a database
    /// edited by hand) is an error naming the database, the query and the
    /// column: `postgres::Row::get` panicked.
    #[test]
    fn a_column_of_another_type_is_an_error_naming_it_not_a_panic() {
        let mut s = TestStore::postgres();
        let (plan, _) = s.plan_of_nops(2);
        s.exec("ALTER TABLE actions ALTER COLUMN name TYPE integer USING length(name)");
        let e = reopened(&s).actions(&plan).expect_err("an integer name");
        let StoreError::Column {
            path,
            query,
            column,
            cause,
        } = &e
        else {
            panic!("not a column error: {e}");
        };
        assert_eq!(column, "name", "{e}");
        assert!(query.contains("FROM actions x"), "{e}");
        assert!(cause.contains("int4"), "{e}");
        assert!(path.to_string_lossy().contains("sextant_unit_"), "{e}");
        let text = e.to_string();
        assert!(
            text.contains("column name of `SELECT") && text.contains("int4"),
            "{text}"
        );
        // Reading changed nothing: the names are still the integers.
        assert_eq!(s.int("SELECT MAX(name) FROM actions"), Some(2));
        // A plan's planner, the same.
        s.exec("ALTER TABLE action_plans ALTER COLUMN planner TYPE integer USING 7");
        let e = reopened(&s).plan(&plan).expect_err("an integer planner");
        assert!(
            matches!(&e, StoreError::Column { column, .. } if column == "planner"),
            "{e}"
        );
    }
}
