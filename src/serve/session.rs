//! Queries over the PostgreSQL wire protocol: the statement check, and the gate's limits told
//! in PostgreSQL's terms (SQLSTATEs).
//!
//! Every statement goes through [`ReadOnly`] first: reads pass exactly where `shelfcast query`
//! lets them pass (the same check), a client's session settings (`SET application_name`,
//! `statement_timeout`, `TimeZone`, …) and transaction brackets are answered without touching
//! the shared catalog, `SET datafusion.…` and every write are refused.
//!
//! A query then goes through the [`Gate`] shared with Flight SQL: one of `max-queries` slots
//! (waiting at most `queue-wait`), its own session over the current snapshot with its own
//! memory pool, and its rows streamed; the slot is held until the last row is sent. Past `query-timeout` (or the client's shorter
//! `statement_timeout`) the query is stopped with SQLSTATE 57014, whether it is still planning
//! or already streaming.

use std::fmt::Debug;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use datafusion::common::ParamValues;
use datafusion::logical_expr::LogicalPlan;
use datafusion::prelude::SessionContext;
use datafusion::sql::sqlparser::ast::{Set, Statement};
use datafusion_postgres::DfSessionService;
use datafusion_postgres::QueryHook;
use datafusion_postgres::hooks::HookClient;
use datafusion_postgres::pgwire::api::portal::{Format, Portal};
use datafusion_postgres::pgwire::api::query::{ExtendedQueryHandler, SimpleQueryHandler};
use datafusion_postgres::pgwire::api::results::{DescribePortalResponse, FieldInfo, Response, Tag};
use datafusion_postgres::pgwire::api::stmt::QueryParser;
use datafusion_postgres::pgwire::api::store::PortalStore;
use datafusion_postgres::pgwire::api::{ClientInfo, ClientPortalStore, METADATA_USER, Type};
use datafusion_postgres::pgwire::error::{ErrorInfo, PgWireError, PgWireResult};
use datafusion_postgres::pgwire::messages::PgWireBackendMessage;
use futures::{Sink, StreamExt};

use super::gate::{self, Gate, Guarded, Pass, Refusal, Stop};
use super::live::Live;

/// A parsed statement: its text and, unless empty, the statement and its plan.
pub type DfStatement = (String, Option<(Statement, LogicalPlan)>);

/// Session settings a client may change; they are kept per connection, never in the catalog.
const CLIENT_SETTINGS: [&str; 7] = [
    "statement_timeout",
    "datestyle",
    "bytea_output",
    "intervalstyle",
    "application_name",
    "extra_float_digits",
    "search_path",
];

/// SQLSTATE of a refused write: `read_only_sql_transaction`.
const READ_ONLY: &str = "25006";
/// SQLSTATE of a query stopped by its timeout: `query_canceled`.
const CANCELED: &str = "57014";
/// SQLSTATE of a query refused for want of a slot: `too_many_connections`.
const BUSY: &str = "53300";
/// SQLSTATE of a query refused during shutdown: `admin_shutdown`.
const SHUTDOWN: &str = "57P01";
/// SQLSTATE of a query past its memory pool: `out_of_memory`.
const OUT_OF_MEMORY: &str = "53200";
/// SQLSTATE of a failure of the server's own: `internal_error`.
const INTERNAL: &str = "XX000";

fn error(code: &str, message: impl Into<String>) -> PgWireError {
    PgWireError::UserError(Box::new(ErrorInfo::new("ERROR".into(), code.into(), message.into())))
}

/// What the server does with a statement before planning it.
#[derive(Debug, PartialEq, Eq)]
enum Verdict {
    /// Run it (a read, or a session statement the built-in hooks answer per connection).
    Pass,
    /// Answer `SET` without doing anything (a client's setting this server has no use for).
    Ignore,
    /// Answer with this command tag without doing anything (savepoints: reads have nothing to
    /// roll back).
    Acknowledge(&'static str),
    /// Refuse it, naming the statement's keyword.
    Refuse(String),
}

fn verdict(st: &Statement) -> Verdict {
    match st {
        Statement::Set(set) => match set {
            Set::SingleAssignment { variable, .. } => {
                let name = variable.to_string().to_ascii_lowercase();
                if name.starts_with("datafusion.") {
                    Verdict::Refuse("SET".into())
                } else if CLIENT_SETTINGS.contains(&name.as_str()) {
                    Verdict::Pass
                } else {
                    Verdict::Ignore
                }
            }
            Set::SetTimeZone { local: false, .. } => Verdict::Pass,
            _ => Verdict::Ignore,
        },
        Statement::ShowVariable { .. }
        | Statement::StartTransaction { .. }
        | Statement::Commit { .. }
        | Statement::Rollback { .. }
        | Statement::Fetch { .. }
        | Statement::Close { .. } => Verdict::Pass,
        Statement::Discard { .. } => Verdict::Ignore,
        Statement::Savepoint { .. } => Verdict::Acknowledge("SAVEPOINT"),
        Statement::ReleaseSavepoint { .. } => Verdict::Acknowledge("RELEASE"),
        Statement::Declare { stmts } => {
            for d in stmts {
                if let Some(q) = &d.for_query
                    && let Some(kw) = crate::query::refused_statement(&Statement::Query(q.clone()))
                {
                    return Verdict::Refuse(kw);
                }
            }
            Verdict::Pass
        }
        other => match crate::query::refused_statement(other) {
            Some(kw) => Verdict::Refuse(kw),
            None => Verdict::Pass,
        },
    }
}

fn refusal(keyword: String) -> PgWireError {
    error(READ_ONLY, crate::error::Error::ReadOnly { statement: keyword }.to_string())
}

/// The first statement hook: refuses writes, answers the settings the server ignores.
#[derive(Debug)]
pub struct ReadOnly;

#[async_trait]
impl QueryHook for ReadOnly {
    async fn handle_simple_query(
        &self,
        statement: &Statement,
        _ctx: &SessionContext,
        _client: &mut dyn HookClient,
    ) -> Option<PgWireResult<Response>> {
        answer(statement)
    }

    async fn handle_extended_parse_query(
        &self,
        statement: &Statement,
        _ctx: &SessionContext,
        _client: &(dyn ClientInfo + Send + Sync),
    ) -> Option<PgWireResult<LogicalPlan>> {
        match verdict(statement) {
            Verdict::Refuse(kw) => Some(Err(refusal(kw))),
            // An ignored SET is planned as an empty relation and answered at execution.
            Verdict::Ignore | Verdict::Acknowledge(_) => {
                Some(Ok(LogicalPlan::EmptyRelation(datafusion::logical_expr::EmptyRelation {
                    produce_one_row: false,
                    schema: Arc::new(datafusion::common::DFSchema::empty()),
                })))
            }
            Verdict::Pass => None,
        }
    }

    async fn handle_extended_query(
        &self,
        statement: &Statement,
        _plan: &LogicalPlan,
        _params: &ParamValues,
        _ctx: &SessionContext,
        _client: &mut dyn HookClient,
    ) -> Option<PgWireResult<Response>> {
        answer(statement)
    }
}

/// The hook's answer at execution: none (run it), `SET` (ignored), or the refusal.
fn answer(statement: &Statement) -> Option<PgWireResult<Response>> {
    match verdict(statement) {
        Verdict::Pass => None,
        Verdict::Ignore => Some(Ok(Response::Execution(Tag::new("SET")))),
        Verdict::Acknowledge(tag) => Some(Ok(Response::Execution(Tag::new(tag)))),
        Verdict::Refuse(kw) => Some(Err(refusal(kw))),
    }
}

/// The statement hooks of every query: [`ReadOnly`] first, then `datafusion-postgres`'s
/// (`SET`/`SHOW` per connection, transaction brackets, cursors).
pub fn hooks() -> Vec<Arc<dyn QueryHook>> {
    use datafusion_postgres::hooks::{cursor, set_show, transactions};
    vec![
        Arc::new(ReadOnly),
        Arc::new(set_show::SetShowHook),
        Arc::new(transactions::TransactionStatementHook),
        Arc::new(cursor::CursorStatementHook),
    ]
}

/// Answers the queries of every connection.
pub struct Service {
    gate: Arc<Gate>,
    parser: Arc<LiveParser>,
}

impl Service {
    /// A service letting queries in through `gate`.
    pub fn new(gate: Arc<Gate>) -> Self {
        let parser = Arc::new(LiveParser { live: Arc::clone(gate.live()) });
        Self { gate, parser }
    }

    /// Admits one query through the gate, with the client's `statement_timeout`; a refusal in
    /// PostgreSQL's terms.
    async fn admit<C: ClientInfo + ?Sized>(&self, client: &C, sql: &str) -> PgWireResult<Admitted> {
        let who = gate::Client {
            user: client.metadata().get(METADATA_USER).cloned().unwrap_or_default(),
            peer: client.socket_addr().to_string(),
            protocol: "pg",
        };
        let client_limit = client
            .metadata()
            .get("statement_timeout_ms")
            .and_then(|s| s.parse::<u64>().ok())
            .map(Duration::from_millis);
        let pass = self.gate.admit(who, sql, client_limit).await.map_err(|r| {
            let code = match r {
                Refusal::ShuttingDown => SHUTDOWN,
                Refusal::Busy { .. } => BUSY,
                Refusal::Session(_) => INTERNAL,
            };
            error(code, r.to_string())
        })?;
        let service =
            DfSessionService::new_with_hooks(Arc::new(pass.session.clone()), self.gate.live().hooks().to_vec());
        Ok(Admitted { service, pass })
    }
}

/// A query let in: its session service and its pass.
struct Admitted {
    service: DfSessionService,
    pass: Pass,
}

impl Admitted {
    /// `e`, told in the server's terms where a limit caused it; logged as the failure.
    fn failed(&self, e: PgWireError) -> PgWireError {
        let e = told(e, &self.pass);
        self.pass.log.fail(&describe(&e));
        e
    }

    /// Runs `work` (planning, and the start of execution) until the deadline.
    async fn within<T>(&self, work: impl std::future::Future<Output = PgWireResult<T>>) -> PgWireResult<T> {
        match tokio::time::timeout_at(self.pass.deadline, work).await {
            Err(_) => {
                self.pass.log.fail("57014 timed out");
                Err(error(CANCELED, self.pass.timeout_message()))
            }
            Ok(r) => r.map_err(|e| self.failed(e)),
        }
    }

    /// Wraps the rows of a query response so they stop at the deadline and are counted, and
    /// the slot is held until the last one is sent.
    fn guard(&self, response: Response) -> Response {
        match response {
            Response::Query(mut q) => {
                let rows = std::mem::replace(&mut q.data_rows, Box::pin(futures::stream::empty()));
                let pass = self.pass.clone();
                q.data_rows = Box::pin(Guarded::new(rows, self.pass.clone(), |_| 1).map(move |r| {
                    r.map_err(|stop| match stop {
                        Stop::Timeout => error(CANCELED, pass.timeout_message()),
                        Stop::Failed(e) => told(e, &pass),
                    })
                }));
                Response::Query(q)
            }
            other => other,
        }
    }
}

/// An error's message as a client reads it.
fn describe(e: &PgWireError) -> String {
    match e {
        PgWireError::UserError(info) => format!("{} {}", info.code, info.message),
        other => other.to_string(),
    }
}

/// DataFusion's "Resources exhausted" as PostgreSQL's `out_of_memory`, naming the setting.
fn told(e: PgWireError, pass: &Pass) -> PgWireError {
    match pass.over_budget(&e.to_string()) {
        Some(message) => error(OUT_OF_MEMORY, message),
        None => e,
    }
}

#[async_trait]
impl SimpleQueryHandler for Service {
    async fn do_query<C>(&self, client: &mut C, query: &str) -> PgWireResult<Vec<Response>>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let q = self.admit(client, query).await?;
        let responses = q.within(SimpleQueryHandler::do_query(&q.service, client, query)).await?;
        Ok(responses.into_iter().map(|r| q.guard(r)).collect())
    }
}

#[async_trait]
impl ExtendedQueryHandler for Service {
    type Statement = DfStatement;
    type QueryParser = LiveParser;

    fn query_parser(&self) -> Arc<Self::QueryParser> {
        Arc::clone(&self.parser)
    }

    /// A cursor opened by `DECLARE` keeps its query as text only (no plan), so it is planned
    /// here to describe its columns: psycopg's named cursors describe the portal before fetching.
    async fn do_describe_portal<C>(
        &self,
        client: &mut C,
        target: &Portal<Self::Statement>,
    ) -> PgWireResult<DescribePortalResponse>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Self::Statement>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let stmt = &target.statement.statement;
        let format = Some(&target.result_column_format);
        if stmt.1.is_none()
            && !stmt.0.trim().is_empty()
            && let Some(planned) = self.parser.parse_sql(client, &stmt.0, &[]).await?
        {
            return Ok(DescribePortalResponse::new(self.parser.get_result_schema(&planned, format)?));
        }
        Ok(DescribePortalResponse::new(self.parser.get_result_schema(stmt, format)?))
    }

    async fn do_query<C>(
        &self,
        client: &mut C,
        portal: &Portal<Self::Statement>,
        max_rows: usize,
    ) -> PgWireResult<Response>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Self::Statement>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let q = self.admit(client, &portal.statement.statement.0).await?;
        let response = q.within(ExtendedQueryHandler::do_query(&q.service, client, portal, max_rows)).await?;
        Ok(q.guard(response))
    }
}

/// Parses statements against the current snapshot (the [`ReadOnly`] hook runs here too).
pub struct LiveParser {
    live: Arc<Live>,
}

#[async_trait]
impl QueryParser for LiveParser {
    type Statement = DfStatement;

    async fn parse_sql<C>(&self, client: &C, sql: &str, types: &[Option<Type>]) -> PgWireResult<Option<DfStatement>>
    where
        C: ClientInfo + Unpin + Send + Sync,
    {
        let snapshot = self.live.current();
        snapshot.parser.query_parser().parse_sql(client, sql, types).await
    }

    fn get_parameter_types(&self, stmt: &DfStatement) -> PgWireResult<Vec<Type>> {
        self.live.current().parser.query_parser().get_parameter_types(stmt)
    }

    fn get_result_schema(&self, stmt: &DfStatement, format: Option<&Format>) -> PgWireResult<Vec<FieldInfo>> {
        self.live.current().parser.query_parser().get_result_schema(stmt, format)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
    use datafusion::sql::sqlparser::parser::Parser;

    fn judge(sql: &str) -> Verdict {
        let st = Parser::parse_sql(&PostgreSqlDialect {}, sql).unwrap().remove(0);
        verdict(&st)
    }

    #[test]
    fn reads_and_client_settings_pass_writes_and_engine_settings_are_refused() {
        for ok in [
            "SELECT 1",
            "WITH a AS (SELECT 1) SELECT * FROM a",
            "SET application_name = 'dbeaver'",
            "SET statement_timeout = '2s'",
            "SET TIME ZONE 'UTC'",
            "SHOW search_path",
            "BEGIN",
            "COMMIT",
            "DECLARE c CURSOR FOR SELECT 1",
        ] {
            assert_eq!(judge(ok), Verdict::Pass, "{ok}");
        }
        assert_eq!(judge("SET client_min_messages = warning"), Verdict::Ignore);
        assert_eq!(judge("SAVEPOINT sa_1"), Verdict::Acknowledge("SAVEPOINT"));
        assert_eq!(judge("RELEASE SAVEPOINT sa_1"), Verdict::Acknowledge("RELEASE"));
        for (bad, kw) in [
            ("SET datafusion.runtime.memory_limit = '100G'", "SET"),
            ("INSERT INTO sales VALUES (1)", "INSERT"),
            ("DROP TABLE sales", "DROP"),
            ("COPY sales TO '/tmp/x.csv'", "COPY"),
            ("CREATE TABLE t AS SELECT 1", "CREATE"),
            ("WITH a AS (SELECT 1 AS x) DELETE FROM sales", "DELETE"),
        ] {
            assert_eq!(judge(bad), Verdict::Refuse(kw.into()), "{bad}");
        }
    }
}
