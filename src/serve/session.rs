//! Queries from clients: the statement check, the limits, the streamed rows and the log line.
//!
//! Every statement goes through [`ReadOnly`] first: reads pass exactly where `shelfcast query`
//! lets them pass (the same check), a client's session settings (`SET application_name`,
//! `statement_timeout`, `TimeZone`, …) and transaction brackets are answered without touching
//! the shared catalog, `SET datafusion.…` and every write are refused.
//!
//! A query then takes one of `max-queries` slots (waiting at most `queue-wait`), runs on its
//! own session over the current snapshot with its own memory pool, and streams its rows; the
//! slot is held until the last row is sent. Past `query-timeout` (or the client's shorter
//! `statement_timeout`) the query is stopped with SQLSTATE 57014, whether it is still planning
//! or already streaming.

use std::fmt::Debug;
use std::future::Future as _;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::task::{Context, Poll};
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
use datafusion_postgres::pgwire::messages::data::DataRow;
use futures::{Sink, Stream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::{Instant, Sleep};

use super::live::Live;

/// A parsed statement: its text and, unless empty, the statement and its plan.
pub type DfStatement = (String, Option<(Statement, LogicalPlan)>);

/// Limits on each query.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Longest a query may run, rows streamed included.
    pub timeout: Duration,
    /// Memory pool of one query in bytes; `None`: the session's.
    pub memory: Option<usize>,
    /// Queries running at once.
    pub max_queries: usize,
    /// How long a query waits for a slot.
    pub queue_wait: Duration,
}

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
    live: Arc<Live>,
    limits: Limits,
    slots: Arc<Semaphore>,
    /// Set at shutdown: new queries are refused.
    pub(crate) draining: AtomicBool,
    parser: Arc<LiveParser>,
}

impl Service {
    /// A service over `live` with `limits`.
    pub fn new(live: Arc<Live>, limits: Limits) -> Self {
        let slots = Arc::new(Semaphore::new(limits.max_queries));
        let parser = Arc::new(LiveParser { live: Arc::clone(&live) });
        Self { live, limits, slots, draining: AtomicBool::new(false), parser }
    }

    /// Queries running now.
    pub fn running(&self) -> usize {
        self.limits.max_queries - self.slots.available_permits()
    }

    /// Returns once no query is running.
    pub async fn idle(&self) {
        let _all = self.slots.acquire_many(self.limits.max_queries as u32).await;
    }

    /// Admits one query: a slot within `queue-wait`, a deadline, a session of its own.
    async fn admit<C: ClientInfo + ?Sized>(&self, client: &C, sql: &str) -> PgWireResult<Admitted> {
        let log = QueryLog::new(client, sql);
        if self.draining.load(Ordering::SeqCst) {
            log.fail("57P01 shutting down");
            return Err(error(SHUTDOWN, "the server is shutting down; reconnect later"));
        }
        let permit = match tokio::time::timeout(self.limits.queue_wait, Arc::clone(&self.slots).acquire_owned()).await {
            Ok(Ok(p)) => p,
            _ => {
                log.fail("53300 no free slot");
                return Err(error(
                    BUSY,
                    format!(
                        "too many queries: {} are running (serve.max-queries); none finished within {} \
                         (serve.queue-wait), try again",
                        self.limits.max_queries,
                        humantime::format_duration(self.limits.queue_wait)
                    ),
                ));
            }
        };
        let client_limit = client
            .metadata()
            .get("statement_timeout_ms")
            .and_then(|s| s.parse::<u64>().ok())
            .filter(|ms| *ms > 0)
            .map(Duration::from_millis);
        let limit = client_limit.map_or(self.limits.timeout, |c| c.min(self.limits.timeout));
        let snapshot = self.live.current();
        let session = snapshot.query_session(self.limits.memory).map_err(|e| PgWireError::ApiError(Box::new(e)))?;
        let service = DfSessionService::new_with_hooks(Arc::new(session), self.live.hooks().to_vec());
        Ok(Admitted {
            service,
            memory: self.limits.memory,
            deadline: Instant::now() + limit,
            limit,
            log: Arc::new(log),
            permit: Arc::new(permit),
        })
    }
}

/// A query let in: its session, deadline, log line and slot.
struct Admitted {
    service: DfSessionService,
    memory: Option<usize>,
    deadline: Instant,
    limit: Duration,
    log: Arc<QueryLog>,
    permit: Arc<OwnedSemaphorePermit>,
}

impl Admitted {
    /// `e`, told in the server's terms where a limit caused it; logged as the failure.
    fn failed(&self, e: PgWireError) -> PgWireError {
        let e = over_budget(e, self.memory);
        self.log.fail(&describe(&e));
        e
    }

    /// Runs `work` (planning, and the start of execution) until the deadline.
    async fn within<T>(&self, work: impl std::future::Future<Output = PgWireResult<T>>) -> PgWireResult<T> {
        match tokio::time::timeout_at(self.deadline, work).await {
            Err(_) => Err(self.timed_out()),
            Ok(r) => r.map_err(|e| self.failed(e)),
        }
    }

    fn timed_out(&self) -> PgWireError {
        self.log.fail("57014 timed out");
        timeout_error(self.limit)
    }

    /// Wraps the rows of a query response so they stop at the deadline and are counted, and
    /// the slot is held until the last one is sent.
    fn guard(&self, response: Response) -> Response {
        match response {
            Response::Query(mut q) => {
                let rows = std::mem::replace(&mut q.data_rows, Box::pin(futures::stream::empty()));
                q.data_rows = Box::pin(Guarded {
                    rows,
                    sleep: Box::pin(tokio::time::sleep_until(self.deadline)),
                    limit: self.limit,
                    memory: self.memory,
                    log: Arc::clone(&self.log),
                    _permit: Arc::clone(&self.permit),
                    done: false,
                });
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
fn over_budget(e: PgWireError, memory: Option<usize>) -> PgWireError {
    let text = e.to_string();
    match (text.contains("Resources exhausted"), memory) {
        (true, Some(bytes)) => error(
            OUT_OF_MEMORY,
            format!(
                "the query needs more than its memory budget of {} MiB (serve.query-memory-mb): {}",
                bytes / (1024 * 1024),
                text.trim_start_matches("SQL error: ")
            ),
        ),
        _ => e,
    }
}

fn timeout_error(limit: Duration) -> PgWireError {
    error(
        CANCELED,
        format!(
            "canceling statement due to statement timeout ({}; serve.query-timeout or the client's statement_timeout)",
            humantime::format_duration(limit)
        ),
    )
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

/// Rows of one response: stopped at the deadline, counted into the query's log line.
struct Guarded {
    rows: Pin<Box<dyn Stream<Item = PgWireResult<DataRow>> + Send>>,
    sleep: Pin<Box<Sleep>>,
    limit: Duration,
    memory: Option<usize>,
    log: Arc<QueryLog>,
    _permit: Arc<OwnedSemaphorePermit>,
    done: bool,
}

impl Stream for Guarded {
    type Item = PgWireResult<DataRow>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.done {
            return Poll::Ready(None);
        }
        // A result that streams without pause is still stopped at the deadline.
        if self.sleep.as_mut().poll(cx).is_ready() {
            self.done = true;
            self.log.fail("57014 timed out");
            return Poll::Ready(Some(Err(timeout_error(self.limit))));
        }
        match self.rows.as_mut().poll_next(cx) {
            Poll::Ready(Some(Ok(row))) => {
                self.log.rows.fetch_add(1, Ordering::Relaxed);
                Poll::Ready(Some(Ok(row)))
            }
            Poll::Ready(Some(Err(e))) => {
                self.done = true;
                let e = over_budget(e, self.memory);
                self.log.fail(&describe(&e));
                Poll::Ready(Some(Err(e)))
            }
            Poll::Ready(None) => {
                self.done = true;
                Poll::Ready(None)
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

/// The log line of one query, written when the query is over (its last rows sent, or failed).
struct QueryLog {
    user: String,
    peer: String,
    sql: String,
    started: Instant,
    rows: AtomicU64,
    failure: std::sync::Mutex<Option<String>>,
}

/// Longest statement text a log line carries.
const LOGGED_SQL: usize = 300;

impl QueryLog {
    fn new<C: ClientInfo + ?Sized>(client: &C, sql: &str) -> Self {
        let mut text: String = sql.split_whitespace().collect::<Vec<_>>().join(" ");
        if text.len() > LOGGED_SQL {
            let mut end = LOGGED_SQL;
            while !text.is_char_boundary(end) {
                end -= 1;
            }
            text.truncate(end);
            text.push('…');
        }
        Self {
            user: client.metadata().get(METADATA_USER).cloned().unwrap_or_default(),
            peer: client.socket_addr().to_string(),
            sql: text,
            started: Instant::now(),
            rows: AtomicU64::new(0),
            failure: std::sync::Mutex::new(None),
        }
    }

    fn fail(&self, why: &str) {
        let mut f = self.failure.lock().unwrap_or_else(|e| e.into_inner());
        if f.is_none() {
            *f = Some(why.to_string());
        }
    }
}

impl Drop for QueryLog {
    fn drop(&mut self) {
        let ms = self.started.elapsed().as_millis() as u64;
        let rows = self.rows.load(Ordering::Relaxed);
        let failure = self.failure.lock().unwrap_or_else(|e| e.into_inner()).take();
        match failure {
            None => tracing::info!(user = %self.user, peer = %self.peer, ms, rows, sql = %self.sql, "query"),
            Some(error) => {
                tracing::info!(user = %self.user, peer = %self.peer, ms, rows, sql = %self.sql, %error, "query failed")
            }
        }
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
