//! Queries over Arrow Flight SQL: the same catalog, checks and limits as the PostgreSQL wire,
//! with results sent as Arrow record batches (no conversion to rows), for ADBC's Flight SQL
//! driver (Python, R, Go, C), the Flight SQL JDBC/ODBC drivers and any Arrow client.
//!
//! The protocol (gRPC, the Flight SQL commands) is `arrow-flight`'s on `tonic`. A statement is
//! planned when the client asks for its `FlightInfo` (a write is refused there, exactly as
//! `query` refuses it), and run when the client fetches its ticket: then it goes through the
//! [`Gate`] shared with the PostgreSQL endpoint (a slot, a deadline, its own memory pool) and
//! its batches are streamed as they come. Prepared statements without parameters (how JDBC
//! runs every query) and the catalog commands (catalogs, schemas, tables, table types,
//! server info) are answered; writes, parameters, transactions and Substrait are not.
//!
//! With a password, a client logs in with HTTP basic authentication (user name and password),
//! either on every call or once through the `Handshake`, which answers with a bearer token that
//! is valid for [`TOKEN_LIFETIME`]; Flight clients (ADBC's `username`/`password`) do the latter.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arrow::datatypes::{Schema, SchemaRef};
use arrow::ipc::writer::IpcWriteOptions;
use arrow::record_batch::RecordBatch;
use arrow_flight::encode::FlightDataEncoderBuilder;
use arrow_flight::error::FlightError;
use arrow_flight::sql::metadata::{SqlInfoData, SqlInfoDataBuilder};
use arrow_flight::sql::server::FlightSqlService;
use arrow_flight::sql::{
    ActionClosePreparedStatementRequest, ActionCreatePreparedStatementRequest, ActionCreatePreparedStatementResult,
    Any, CommandGetCatalogs, CommandGetDbSchemas, CommandGetSqlInfo, CommandGetTableTypes, CommandGetTables,
    CommandPreparedStatementQuery, CommandStatementQuery, ProstMessageExt, SqlInfo, TicketStatementQuery,
};
use arrow_flight::{
    Action, FlightDescriptor, FlightEndpoint, FlightInfo, HandshakeRequest, HandshakeResponse, IpcMessage, SchemaAsIpc,
    Ticket,
};
use base64::Engine as _;
use datafusion::prelude::SessionContext;
use futures::{Stream, TryStreamExt};
use prost::Message;
use tokio::time::Instant;
use tonic::metadata::MetadataValue;
use tonic::{Request, Response, Status, Streaming};

use super::auth::Login;
use super::gate::{self, Gate, Guarded, QueryLog, Refusal, Stop};
use crate::error::Error;

/// How long a token from the handshake is accepted.
pub const TOKEN_LIFETIME: Duration = Duration::from_secs(12 * 3600);

type DoGetStream = Pin<Box<dyn Stream<Item = Result<arrow_flight::FlightData, Status>> + Send + 'static>>;

/// The Flight SQL service.
pub struct FlightSql {
    gate: Arc<Gate>,
    login: Option<Login>,
    /// Tokens handed out by the handshake: token → (user, expiry).
    tokens: Mutex<HashMap<String, (String, Instant)>>,
    info: SqlInfoData,
}

impl FlightSql {
    /// A service letting queries in through `gate`; `login`, when set, is required.
    pub fn new(gate: Arc<Gate>, login: Option<Login>) -> Self {
        let mut info = SqlInfoDataBuilder::new();
        info.append(SqlInfo::FlightSqlServerName, "shelfcast");
        info.append(SqlInfo::FlightSqlServerVersion, env!("CARGO_PKG_VERSION"));
        info.append(SqlInfo::FlightSqlServerArrowVersion, arrow::ARROW_VERSION);
        info.append(SqlInfo::FlightSqlServerReadOnly, true);
        info.append(SqlInfo::FlightSqlServerSql, true);
        info.append(SqlInfo::FlightSqlServerSubstrait, false);
        info.append(SqlInfo::FlightSqlServerTransaction, 0i32);
        info.append(SqlInfo::FlightSqlServerCancel, false);
        info.append(SqlInfo::SqlIdentifierQuoteChar, "\"");
        let info = info.build().expect("the server info is a valid SqlInfo set");
        Self { gate, login, tokens: Mutex::new(HashMap::new()), info }
    }

    /// The user a request comes from; refused unless it carries valid basic credentials or a
    /// token from the handshake (when a password is set).
    fn caller<T>(&self, request: &Request<T>) -> Result<String, Status> {
        let header = request.metadata().get("authorization").and_then(|v| v.to_str().ok()).unwrap_or("");
        let Some(login) = &self.login else {
            return Ok(basic(header).map(|(user, _)| user).unwrap_or_default());
        };
        if let Some((user, password)) = basic(header)
            && same(&user, &login.user)
            && same(&password, &login.password)
        {
            return Ok(user);
        }
        if let Some(token) = header.strip_prefix("Bearer ") {
            let tokens = self.tokens.lock().unwrap_or_else(|e| e.into_inner());
            if let Some((user, expires)) = tokens.get(token)
                && *expires > Instant::now()
            {
                return Ok(user.clone());
            }
        }
        Err(Status::unauthenticated(format!(
            "password authentication failed for user \"{}\"",
            basic(header).map(|(u, _)| u).unwrap_or_default()
        )))
    }

    /// Plans `sql` on the current snapshot, under the query timeout: its result's schema. A
    /// failure is logged as the query's line.
    async fn schema_of(&self, user: String, peer: String, sql: &str) -> Result<SchemaRef, Status> {
        let ctx: SessionContext = self.gate.live().current().ctx.clone();
        let limit = self.gate.limits().timeout;
        let planned = tokio::time::timeout(limit, crate::query::plan(&ctx, sql)).await;
        let failure = match planned {
            Ok(Ok(df)) => return Ok(Arc::new(df.schema().as_arrow().clone())),
            Ok(Err(e)) => status_of(&e),
            Err(_) => Status::deadline_exceeded(gate::timeout_message(limit)),
        };
        QueryLog::new(gate::Client { user, peer, protocol: "flight" }, sql).fail(failure.message());
        Err(failure)
    }

    /// The `FlightInfo` of a query: its schema and one ticket that runs it.
    async fn statement_info<T>(&self, sql: &str, request: &Request<T>) -> Result<FlightInfo, Status> {
        let user = self.caller(request)?;
        let schema = self.schema_of(user, peer(request), sql).await?;
        let ticket = TicketStatementQuery { statement_handle: sql.as_bytes().to_vec().into() };
        info(&schema, ticket.as_any().encode_to_vec())
    }

    /// Runs `sql` through the gate and streams its batches.
    async fn run<T>(&self, sql: &str, request: &Request<T>) -> Result<Response<DoGetStream>, Status> {
        let user = self.caller(request)?;
        let who = gate::Client { user, peer: peer(request), protocol: "flight" };
        let pass = self.gate.admit(who, sql, None).await.map_err(|r| match r {
            Refusal::ShuttingDown => Status::unavailable(r.to_string()),
            Refusal::Busy { .. } => Status::resource_exhausted(r.to_string()),
            Refusal::Session(_) => Status::internal(r.to_string()),
        })?;
        let started = tokio::time::timeout_at(pass.deadline, async {
            let df = crate::query::plan(&pass.session, sql).await?;
            Ok::<_, Error>(df.execute_stream().await?)
        })
        .await;
        let batches = match started {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => {
                let status = status_of(&e);
                let status = match pass.over_budget(status.message()) {
                    Some(m) => Status::resource_exhausted(m),
                    None => status,
                };
                pass.log.fail(status.message());
                return Err(status);
            }
            Err(_) => {
                pass.log.fail("timed out");
                return Err(Status::deadline_exceeded(pass.timeout_message()));
            }
        };
        let schema = batches.schema();
        let told = pass.clone();
        let guarded =
            Guarded::new(batches, pass, |b: &RecordBatch| b.num_rows() as u64).map_err(move |stop| match stop {
                Stop::Timeout => FlightError::Tonic(Box::new(Status::deadline_exceeded(told.timeout_message()))),
                Stop::Failed(e) => {
                    let text = e.to_string();
                    FlightError::Tonic(Box::new(match told.over_budget(&text) {
                        Some(m) => Status::resource_exhausted(m),
                        None => Status::internal(text),
                    }))
                }
            });
        let stream = FlightDataEncoderBuilder::new().with_schema(schema).build(guarded).map_err(Status::from);
        Ok(Response::new(Box::pin(stream)))
    }

    /// The catalog's tables, for the catalog commands: (catalog, schema, table, type, schema).
    async fn tables(&self, with_schema: bool) -> Vec<(String, String, String, String, SchemaRef)> {
        let ctx = self.gate.live().current().ctx.clone();
        let mut out = Vec::new();
        for catalog_name in ctx.catalog_names() {
            let Some(catalog) = ctx.catalog(&catalog_name) else { continue };
            for schema_name in catalog.schema_names() {
                let Some(schema) = catalog.schema(&schema_name) else { continue };
                for table_name in schema.table_names() {
                    let Ok(Some(table)) = schema.table(&table_name).await else { continue };
                    let kind = match table.table_type() {
                        datafusion::datasource::TableType::View => "VIEW",
                        datafusion::datasource::TableType::Temporary => "LOCAL TEMPORARY",
                        datafusion::datasource::TableType::Base => "TABLE",
                    };
                    let columns = if with_schema { table.schema() } else { Arc::new(Schema::empty()) };
                    out.push((catalog_name.clone(), schema_name.clone(), table_name, kind.to_string(), columns));
                }
            }
        }
        out.sort_by(|a, b| (&a.0, &a.1, &a.2).cmp(&(&b.0, &b.1, &b.2)));
        out
    }
}

/// A user name and password from an HTTP basic `authorization` header (base64 with or without
/// padding: Go's Flight client sends none).
fn basic(header: &str) -> Option<(String, String)> {
    let encoded = header.strip_prefix("Basic ")?.trim().trim_end_matches('=');
    let decoded = base64::engine::general_purpose::STANDARD_NO_PAD.decode(encoded).ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (user, password) = text.split_once(':')?;
    Some((user.to_string(), password.to_string()))
}

/// Compares secrets without stopping at the first difference.
fn same(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn peer<T>(request: &Request<T>) -> String {
    request.remote_addr().map(|a| a.to_string()).unwrap_or_default()
}

/// A shelfcast error as a gRPC status: a refused write is `PERMISSION_DENIED`, a query that
/// cannot be planned `INVALID_ARGUMENT`, with `query`'s own message.
fn status_of(e: &Error) -> Status {
    match e {
        Error::ReadOnly { .. } => Status::permission_denied(e.to_string()),
        Error::DataFusion(_) | Error::Data(_) => Status::invalid_argument(e.to_string()),
        other => Status::internal(other.to_string()),
    }
}

/// A `FlightInfo` with `schema` and one endpoint whose ticket is `ticket`.
fn info(schema: &Schema, ticket: Vec<u8>) -> Result<FlightInfo, Status> {
    Ok(FlightInfo::new()
        .try_with_schema(schema)
        .map_err(|e| Status::internal(format!("cannot encode the result's schema: {e}")))?
        .with_endpoint(FlightEndpoint::new().with_ticket(Ticket::new(ticket))))
}

/// The `FlightInfo` of a catalog command: its result's schema and a ticket that is the command.
fn command_info(
    schema: &Schema,
    command: Vec<u8>,
    request: Request<FlightDescriptor>,
) -> Result<Response<FlightInfo>, Status> {
    Ok(Response::new(info(schema, command)?.with_descriptor(request.into_inner())))
}

/// One batch as a `DoGet` stream.
fn one_batch(batch: Result<RecordBatch, FlightError>) -> Result<Response<DoGetStream>, Status> {
    let batch = batch.map_err(Status::from)?;
    let stream = FlightDataEncoderBuilder::new()
        .with_schema(batch.schema())
        .build(futures::stream::iter([Ok(batch)]))
        .map_err(Status::from);
    Ok(Response::new(Box::pin(stream)))
}

/// The SQL text of a handle this server made (a statement ticket or a prepared statement).
fn sql_of(handle: &[u8]) -> Result<&str, Status> {
    std::str::from_utf8(handle).map_err(|_| Status::invalid_argument("the statement handle is not this server's"))
}

#[tonic::async_trait]
impl FlightSqlService for FlightSql {
    type FlightService = FlightSql;

    async fn do_handshake(
        &self,
        request: Request<Streaming<HandshakeRequest>>,
    ) -> Result<Response<Pin<Box<dyn Stream<Item = Result<HandshakeResponse, Status>> + Send>>>, Status> {
        let user = self.caller(&request)?;
        let token = hex::encode(rand::random::<[u8; 32]>());
        {
            let mut tokens = self.tokens.lock().unwrap_or_else(|e| e.into_inner());
            let now = Instant::now();
            tokens.retain(|_, (_, expires)| *expires > now);
            tokens.insert(token.clone(), (user, now + TOKEN_LIFETIME));
        }
        let reply = HandshakeResponse { protocol_version: 0, payload: token.clone().into_bytes().into() };
        let mut response: Response<Pin<Box<dyn Stream<Item = Result<HandshakeResponse, Status>> + Send>>> =
            Response::new(Box::pin(futures::stream::iter([Ok(reply)])));
        let bearer = MetadataValue::try_from(format!("Bearer {token}")).map_err(|e| Status::internal(e.to_string()))?;
        response.metadata_mut().insert("authorization", bearer);
        Ok(response)
    }

    async fn get_flight_info_statement(
        &self,
        query: CommandStatementQuery,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let info = self.statement_info(&query.query, &request).await?;
        Ok(Response::new(info.with_descriptor(request.into_inner())))
    }

    async fn get_flight_info_prepared_statement(
        &self,
        query: CommandPreparedStatementQuery,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let info = self.statement_info(sql_of(&query.prepared_statement_handle)?, &request).await?;
        Ok(Response::new(info.with_descriptor(request.into_inner())))
    }

    async fn do_get_statement(
        &self,
        ticket: TicketStatementQuery,
        request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        self.run(sql_of(&ticket.statement_handle)?, &request).await
    }

    async fn do_get_prepared_statement(
        &self,
        query: CommandPreparedStatementQuery,
        request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        self.run(sql_of(&query.prepared_statement_handle)?, &request).await
    }

    async fn do_action_create_prepared_statement(
        &self,
        query: ActionCreatePreparedStatementRequest,
        request: Request<Action>,
    ) -> Result<ActionCreatePreparedStatementResult, Status> {
        let user = self.caller(&request)?;
        let schema = self.schema_of(user, peer(&request), &query.query).await?;
        let IpcMessage(dataset_schema) = SchemaAsIpc::new(&schema, &IpcWriteOptions::default())
            .try_into()
            .map_err(|e: arrow::error::ArrowError| Status::internal(e.to_string()))?;
        Ok(ActionCreatePreparedStatementResult {
            prepared_statement_handle: query.query.into_bytes().into(),
            dataset_schema,
            parameter_schema: Default::default(),
        })
    }

    async fn do_action_close_prepared_statement(
        &self,
        _query: ActionClosePreparedStatementRequest,
        request: Request<Action>,
    ) -> Result<(), Status> {
        // A handle is the statement's text: nothing is kept to free.
        self.caller(&request).map(|_| ())
    }

    async fn do_put_prepared_statement_query(
        &self,
        _query: CommandPreparedStatementQuery,
        request: Request<arrow_flight::sql::server::PeekableFlightDataStream>,
    ) -> Result<arrow_flight::sql::DoPutPreparedStatementResult, Status> {
        self.caller(&request)?;
        Err(Status::unimplemented(
            "statement parameters are not supported: write the values into the SQL text (the endpoint is read-only)",
        ))
    }

    async fn get_flight_info_catalogs(
        &self,
        query: CommandGetCatalogs,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        self.caller(&request)?;
        let schema = query.into_builder().schema();
        command_info(&schema, query.as_any().encode_to_vec(), request)
    }

    async fn do_get_catalogs(
        &self,
        query: CommandGetCatalogs,
        request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        self.caller(&request)?;
        let mut builder = query.into_builder();
        let mut names = self.gate.live().current().ctx.catalog_names();
        names.sort();
        for name in names {
            builder.append(name);
        }
        one_batch(builder.build())
    }

    async fn get_flight_info_schemas(
        &self,
        query: CommandGetDbSchemas,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        self.caller(&request)?;
        let schema = query.clone().into_builder().schema();
        command_info(&schema, query.as_any().encode_to_vec(), request)
    }

    async fn do_get_schemas(
        &self,
        query: CommandGetDbSchemas,
        request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        self.caller(&request)?;
        let mut builder = query.into_builder();
        let ctx = self.gate.live().current().ctx.clone();
        for catalog_name in ctx.catalog_names() {
            if let Some(catalog) = ctx.catalog(&catalog_name) {
                for schema_name in catalog.schema_names() {
                    builder.append(&catalog_name, schema_name);
                }
            }
        }
        one_batch(builder.build())
    }

    async fn get_flight_info_tables(
        &self,
        query: CommandGetTables,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        self.caller(&request)?;
        let schema = query.clone().into_builder().schema();
        command_info(&schema, query.as_any().encode_to_vec(), request)
    }

    async fn do_get_tables(
        &self,
        query: CommandGetTables,
        request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        self.caller(&request)?;
        let with_schema = query.include_schema;
        let mut builder = query.into_builder();
        for (catalog, schema, table, kind, columns) in self.tables(with_schema).await {
            builder.append(catalog, schema, table, kind, &columns).map_err(|e| Status::internal(e.to_string()))?;
        }
        one_batch(builder.build())
    }

    async fn get_flight_info_table_types(
        &self,
        query: CommandGetTableTypes,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        self.caller(&request)?;
        let schema = query.into_builder().schema();
        command_info(&schema, query.as_any().encode_to_vec(), request)
    }

    async fn do_get_table_types(
        &self,
        query: CommandGetTableTypes,
        request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        self.caller(&request)?;
        let mut builder = query.into_builder();
        for kind in ["LOCAL TEMPORARY", "TABLE", "VIEW"] {
            builder.append(kind);
        }
        one_batch(builder.build())
    }

    async fn get_flight_info_sql_info(
        &self,
        query: CommandGetSqlInfo,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        self.caller(&request)?;
        let schema = query.clone().into_builder(&self.info).schema();
        command_info(&schema, query.as_any().encode_to_vec(), request)
    }

    async fn do_get_sql_info(
        &self,
        query: CommandGetSqlInfo,
        request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        self.caller(&request)?;
        one_batch(query.into_builder(&self.info).build())
    }

    async fn do_get_fallback(&self, request: Request<Ticket>, message: Any) -> Result<Response<DoGetStream>, Status> {
        self.caller(&request)?;
        Err(Status::unimplemented(format!("not supported by this read-only server: {}", message.type_url)))
    }

    async fn register_sql_info(&self, _id: i32, _result: &SqlInfo) {}
}

/// The gRPC service to mount on a `tonic` server.
pub fn service(flight: FlightSql) -> arrow_flight::flight_service_server::FlightServiceServer<FlightSql> {
    arrow_flight::flight_service_server::FlightServiceServer::new(flight)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_credentials_are_read_and_compared_whole() {
        let header = format!("Basic {}", base64::engine::general_purpose::STANDARD.encode("bi:s3cr:et"));
        assert_eq!(basic(&header), Some(("bi".into(), "s3cr:et".into())));
        let unpadded = format!("Basic {}", base64::engine::general_purpose::STANDARD_NO_PAD.encode("bi:pw"));
        assert_eq!(basic(&unpadded), Some(("bi".into(), "pw".into())));
        assert_eq!(basic("Bearer abc"), None);
        assert_eq!(basic("Basic !!!"), None);
        assert!(same("abc", "abc"));
        assert!(!same("abc", "abd") && !same("abc", "abcd"));
    }
}
