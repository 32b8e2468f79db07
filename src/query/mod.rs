//! Ad hoc, read-only SQL over the lake's tables, and the output formats `query` writes
//! ([`output`]: a result is written batch by batch as it arrives, never collected whole).
//!
//! Only reading statements run: `SELECT`/`WITH`/`VALUES`, `EXPLAIN` of those,
//! `SHOW` and `DESCRIBE`. Anything else (`DROP`, `INSERT`, `COPY`,
//! `CREATE`, `SET`, …) is refused before planning with [`Error::ReadOnly`], and the
//! plan is checked again with DataFusion's own `SQLOptions` as a second guard.

pub mod catalog;
pub mod output;

use std::io::Write;
use std::ops::ControlFlow;

use arrow::record_batch::RecordBatch;
use datafusion::dataframe::DataFrame;
use datafusion::execution::SendableRecordBatchStream;
use datafusion::execution::context::SQLOptions;
use datafusion::prelude::SessionContext;
use datafusion::sql::parser::{DFParser, Statement as DFStatement};
use datafusion::sql::sqlparser::ast::{Statement, visit_statements};

use crate::error::{Error, Result};
pub use output::{Output, write_stream};

/// How `query` prints results.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// An aligned text table.
    Table,
    /// CSV with a header row.
    Csv,
    /// One JSON array of row objects.
    Json,
    /// A Parquet file (needs `--output`).
    Parquet,
}

/// Refuses any statement that is not a read, including a write nested in a read's clothes
/// (`WITH … INSERT`, `EXPLAIN UPDATE …`).
pub fn ensure_read_only(sql: &str) -> Result<()> {
    let statements = DFParser::parse_sql(sql)?;
    if statements.is_empty() {
        return Err(Error::data("no SQL statement given"));
    }
    for st in &statements {
        if let Some(statement) = refused(st) {
            return Err(Error::ReadOnly { statement });
        }
    }
    Ok(())
}

/// The keyword of the first statement in `st` that is not a read (`None` when all are).
fn refused(st: &DFStatement) -> Option<String> {
    match st {
        DFStatement::Statement(s) => refused_statement(s),
        DFStatement::Explain(e) => refused(&e.statement),
        DFStatement::CreateExternalTable(_) | DFStatement::CopyTo(_) | DFStatement::Reset(_) => {
            Some(first_keyword(&st.to_string()))
        }
    }
}

/// The keyword of the first statement in `s`, or nested in it (a CTE's body, a `WITH`'s main
/// statement, what an `EXPLAIN` explains), that is not a read; `None` when all are. The one
/// check of every SQL entry point (`query`, `serve`).
pub fn refused_statement(s: &Statement) -> Option<String> {
    let mut found = None;
    let _ = visit_statements(s, |st| {
        let read = matches!(
            st,
            Statement::Query(_)
                | Statement::Explain { .. }
                | Statement::ExplainTable { .. }
                | Statement::ShowTables { .. }
                | Statement::ShowColumns { .. }
        );
        if read {
            ControlFlow::Continue(())
        } else {
            found = Some(first_keyword(&st.to_string()));
            ControlFlow::Break(())
        }
    });
    found
}

fn first_keyword(sql: &str) -> String {
    sql.split_whitespace().next().unwrap_or("this").to_ascii_uppercase()
}

/// Plans one read-only query: refused unless it reads (see [`ensure_read_only`]).
pub async fn plan(ctx: &SessionContext, sql: &str) -> Result<DataFrame> {
    ensure_read_only(sql)?;
    let options = SQLOptions::new().with_allow_ddl(false).with_allow_dml(false).with_allow_statements(false);
    Ok(ctx.sql_with_options(sql, options).await?)
}

/// Runs one read-only query and collects its result.
pub async fn run(ctx: &SessionContext, sql: &str) -> Result<Vec<RecordBatch>> {
    Ok(plan(ctx, sql).await?.collect().await?)
}

/// Runs one read-only query; its result as a stream of batches, for [`write_stream`].
pub async fn stream(ctx: &SessionContext, sql: &str) -> Result<SendableRecordBatchStream> {
    Ok(plan(ctx, sql).await?.execute_stream().await?)
}

/// Writes collected batches in `format` to `out`, as [`write_stream`] writes a stream of them.
pub fn write<W: Write + Send>(batches: &[RecordBatch], format: Format, out: W) -> Result<()> {
    let schema = match batches.first() {
        Some(b) => b.schema(),
        None if format == Format::Parquet => {
            return Err(Error::data("the query returned no batches; nothing to write as Parquet"));
        }
        None => std::sync::Arc::new(arrow::datatypes::Schema::empty()),
    };
    let mut output = Output::new(format, schema, out);
    for b in batches {
        output.write(b)?;
    }
    output.finish()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_pass_and_writes_are_refused() {
        for ok in ["SELECT 1", "WITH a AS (SELECT 1) SELECT * FROM a", "EXPLAIN SELECT 1", "SHOW TABLES"] {
            ensure_read_only(ok).unwrap();
        }
        for (bad, kw) in [
            ("DROP TABLE sales", "DROP"),
            ("INSERT INTO sales VALUES (1)", "INSERT"),
            ("COPY sales TO '/tmp/x.csv'", "COPY"),
            ("CREATE TABLE t AS SELECT 1", "CREATE"),
            ("SELECT 1; DELETE FROM sales", "DELETE"),
            ("EXPLAIN ANALYZE INSERT INTO sales VALUES (1)", "INSERT"),
            ("WITH a AS (SELECT 1 AS x) INSERT INTO sales SELECT x FROM a", "INSERT"),
            ("WITH a AS (SELECT 1 AS x) UPDATE sales SET units = 0", "UPDATE"),
            ("WITH a AS (SELECT 1 AS x) DELETE FROM sales", "DELETE"),
            ("EXPLAIN INSERT INTO sales VALUES (1)", "INSERT"),
            ("EXPLAIN WITH a AS (SELECT 1 AS x) INSERT INTO sales SELECT x FROM a", "INSERT"),
            ("EXPLAIN DELETE FROM sales", "DELETE"),
        ] {
            let err = ensure_read_only(bad).unwrap_err();
            assert!(matches!(err, Error::ReadOnly { .. }), "{bad}: {err}");
            assert!(err.to_string().contains(kw), "{bad}: {err}");
        }
    }
}
