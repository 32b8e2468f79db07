//! `shelfcast serve`: a long-running, read-only SQL endpoint over the lake, so psql, psycopg,
//! JDBC (DBeaver, DataGrip), BI tools and Arrow clients (ADBC) query the same catalog as
//! `shelfcast query`. It speaks two protocols on two ports:
//!
//! - the PostgreSQL wire protocol ([`session`], [`auth`]): startup, simple and extended query,
//!   cancel and TLS are `pgwire`'s; Arrow batches become PostgreSQL rows through
//!   `datafusion-postgres`, which also brings `pg_catalog`, so a client's schema browser works;
//! - Arrow Flight SQL ([`flight`]), `arrow-flight`'s on gRPC: results travel as Arrow batches,
//!   with no conversion to rows (ADBC's Flight SQL driver, the Flight SQL JDBC driver).
//!
//! What this module adds is the policy of a shared, read-only server:
//!
//! - [`live`]: the catalog as a snapshot, reopened when the lake changes (a new raw file, a
//!   publication, a run record); a query keeps the snapshot it started on.
//! - [`gate`]: each query of either protocol on its own memory budget, under a timeout and one
//!   limit on concurrent queries, its results streamed, one log line when it ends.
//! - every statement checked as `query` checks it ([`session::ReadOnly`], [`crate::query::plan`]).
//! - no password on loopback unless one is set; with one (from the environment), SCRAM-SHA-256
//!   on the PostgreSQL wire and basic authentication or a handshake token on Flight SQL
//!   (binding elsewhere without one is refused); TLS on both when a certificate is configured.
//!
//! A shutdown (SIGTERM) refuses new queries and PostgreSQL connections, lets running queries
//! finish for a grace period, then closes every connection (the Flight SQL port stays open
//! until then, so a client can still close its statement).

pub mod auth;
pub mod flight;
pub mod gate;
pub mod live;
pub mod session;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::error::{Error, Result};
pub use live::{Live, Source};

/// The `[serve]` settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct ServeSettings {
    /// Address to listen on (`host:port`); loopback by default.
    #[serde(default = "default_listen")]
    pub listen: String,
    /// Address of the Arrow Flight SQL endpoint (`host:port`), loopback by default; empty: off.
    #[serde(default = "default_flight_listen")]
    pub flight_listen: String,
    /// The user name clients log in as when a password is set.
    #[serde(default = "default_user")]
    pub user: String,
    /// The environment variable holding the password (never the file). Unset or empty: no
    /// password, allowed on loopback only.
    #[serde(default = "default_password_env")]
    pub password_env: String,
    /// PEM certificate chain; with `tls-key`, connections may (and clients can insist on) TLS.
    #[serde(default)]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of `tls-cert`.
    #[serde(default)]
    pub tls_key: Option<PathBuf>,
    /// Longest a query may run, rows streamed included; a client's `statement_timeout` may
    /// only shorten it.
    #[serde(default = "default_query_timeout", with = "crate::period::duration")]
    pub query_timeout: Duration,
    /// Memory budget of one query in MiB (sorts and aggregations spill beyond it, others fail
    /// with a clear error); 0: the session's `memory-limit-mb`.
    #[serde(default = "default_query_memory")]
    pub query_memory_mb: usize,
    /// Queries running at once, over all connections.
    #[serde(default = "default_max_queries")]
    pub max_queries: usize,
    /// How long a query waits for a free slot before it is refused.
    #[serde(default = "default_queue_wait", with = "crate::period::duration")]
    pub queue_wait: Duration,
    /// Connections open at once; more are closed at once.
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
    /// How often the lake is checked for a change that reopens the catalog.
    #[serde(default = "default_refresh", with = "crate::period::duration")]
    pub refresh: Duration,
    /// How long running queries may go on after a shutdown request.
    #[serde(default = "default_grace", with = "crate::period::duration")]
    pub shutdown_grace: Duration,
}

fn default_listen() -> String {
    "127.0.0.1:5433".into()
}
fn default_flight_listen() -> String {
    "127.0.0.1:50051".into()
}
fn default_user() -> String {
    "shelfcast".into()
}
fn default_password_env() -> String {
    "SHELFCAST_SERVE_PASSWORD".into()
}
fn default_query_timeout() -> Duration {
    Duration::from_secs(300)
}
fn default_query_memory() -> usize {
    1024
}
fn default_max_queries() -> usize {
    4
}
fn default_queue_wait() -> Duration {
    Duration::from_secs(10)
}
fn default_max_connections() -> usize {
    64
}
fn default_refresh() -> Duration {
    Duration::from_secs(10)
}
fn default_grace() -> Duration {
    Duration::from_secs(30)
}

impl Default for ServeSettings {
    fn default() -> Self {
        Self {
            listen: default_listen(),
            flight_listen: default_flight_listen(),
            user: default_user(),
            password_env: default_password_env(),
            tls_cert: None,
            tls_key: None,
            query_timeout: default_query_timeout(),
            query_memory_mb: default_query_memory(),
            max_queries: default_max_queries(),
            queue_wait: default_queue_wait(),
            max_connections: default_max_connections(),
            refresh: default_refresh(),
            shutdown_grace: default_grace(),
        }
    }
}

/// What the server runs with, resolved from [`ServeSettings`] and the environment.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// Address of the PostgreSQL wire endpoint.
    pub listen: String,
    /// Address of the Flight SQL endpoint; `None`: off.
    pub flight_listen: Option<String>,
    /// User name and password clients must give; `None`: no authentication.
    pub login: Option<auth::Login>,
    /// Certificate and key files for TLS.
    pub tls: Option<(PathBuf, PathBuf)>,
    /// Per-query limits.
    pub limits: gate::Limits,
    /// Connections open at once.
    pub max_connections: usize,
    /// How often the lake is checked for changes.
    pub refresh: Duration,
    /// How long running queries may go on after a shutdown request.
    pub shutdown_grace: Duration,
}

impl ServeOptions {
    /// Resolves `s`: the password is read from the variable `s.password_env` names through
    /// `env`; `session_memory` is the session budget used when `query-memory-mb` is 0.
    pub fn resolve(
        s: &ServeSettings,
        env: impl Fn(&str) -> Option<String>,
        session_memory: Option<usize>,
    ) -> Result<Self> {
        let invalid = |key: &str, message: String| Error::InvalidSetting { key: format!("serve.{key}"), message };
        if s.max_queries == 0 {
            return Err(invalid("max-queries", "must be at least 1".into()));
        }
        if s.max_connections == 0 {
            return Err(invalid("max-connections", "must be at least 1".into()));
        }
        if s.query_timeout.is_zero() {
            return Err(invalid("query-timeout", "must be longer than 0".into()));
        }
        let login = env(&s.password_env)
            .filter(|p| !p.is_empty())
            .map(|password| auth::Login { user: s.user.clone(), password });
        let tls = match (&s.tls_cert, &s.tls_key) {
            (Some(c), Some(k)) => Some((c.clone(), k.clone())),
            (None, None) => None,
            _ => return Err(invalid("tls-cert", "give both tls-cert and tls-key, or neither".into())),
        };
        let memory = match s.query_memory_mb {
            0 => session_memory,
            mb => Some(mb * 1024 * 1024),
        };
        Ok(Self {
            listen: s.listen.clone(),
            flight_listen: Some(s.flight_listen.trim().to_string()).filter(|l| !l.is_empty()),
            login,
            tls,
            limits: gate::Limits {
                timeout: s.query_timeout,
                memory,
                max_queries: s.max_queries,
                queue_wait: s.queue_wait,
            },
            max_connections: s.max_connections,
            refresh: s.refresh,
            shutdown_grace: s.shutdown_grace,
        })
    }

    /// TLS from the configured certificate and key, checked (an error names the file).
    pub fn tls_acceptor(&self) -> Result<Option<TlsAcceptor>> {
        self.tls.as_ref().map(|(cert, key)| auth::tls_acceptor(cert, key)).transpose()
    }
}

/// The listening sockets of both endpoints.
#[derive(Debug)]
pub struct Endpoints {
    /// The PostgreSQL wire endpoint.
    pub pg: TcpListener,
    /// The Flight SQL endpoint, when on.
    pub flight: Option<TcpListener>,
}

/// Binds both endpoints; refuses an address other than loopback when no password is set.
pub async fn bind(opts: &ServeOptions, password_env: &str) -> Result<Endpoints> {
    let pg = listen_on(&opts.listen, "serve.listen", opts, password_env).await?;
    let flight = match &opts.flight_listen {
        Some(addr) => Some(listen_on(addr, "serve.flight-listen", opts, password_env).await?),
        None => None,
    };
    Ok(Endpoints { pg, flight })
}

async fn listen_on(addr: &str, key: &str, opts: &ServeOptions, password_env: &str) -> Result<TcpListener> {
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|e| Error::InvalidSetting { key: key.into(), message: format!("cannot listen on {addr}: {e}") })?;
    let bound = listener.local_addr()?;
    if opts.login.is_none() && !bound.ip().is_loopback() {
        return Err(Error::InvalidSetting {
            key: key.into(),
            message: format!(
                "{bound} is reachable from other machines: set a password in the environment variable \
                 {password_env} (or listen on 127.0.0.1)"
            ),
        });
    }
    Ok(listener)
}

/// Serves `live` on both endpoints until `shutdown` is cancelled; then stops accepting, lets
/// the running queries finish within the grace period, and closes every connection. `tls` is
/// [`ServeOptions::tls_acceptor`]'s.
pub async fn serve(
    endpoints: Endpoints,
    live: Arc<Live>,
    opts: ServeOptions,
    tls: Option<TlsAcceptor>,
    shutdown: CancellationToken,
) -> Result<()> {
    let Endpoints { pg: listener, flight } = endpoints;
    let addr = listener.local_addr()?;
    let gate = Arc::new(gate::Gate::new(Arc::clone(&live), opts.limits.clone()));
    let service = Arc::new(session::Service::new(Arc::clone(&gate)));
    let handlers = Arc::new(auth::Handlers::new(Arc::clone(&service), opts.login.clone()));
    let refresher = tokio::spawn(live::refresh_every(Arc::clone(&live), opts.refresh, shutdown.clone()));
    // The Flight SQL endpoint stays up through the grace period (the gate refuses new queries),
    // so clients of running queries can still close their statements.
    let flight_stop = CancellationToken::new();
    let flight = match flight {
        Some(l) => Some(spawn_flight(l, &gate, &opts, flight_stop.clone())?),
        None => None,
    };
    let connections = Arc::new(Semaphore::new(opts.max_connections));
    let mut open = JoinSet::new();
    info!(%addr, tls = tls.is_some(), password = opts.login.is_some(), "serving SQL (PostgreSQL wire)");
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => {
                let (socket, peer) = match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        warn!(cause = %e, "cannot accept a connection");
                        continue;
                    }
                };
                let Ok(permit) = Arc::clone(&connections).try_acquire_owned() else {
                    warn!(%peer, max = opts.max_connections, "connection refused: max-connections reached");
                    drop(socket);
                    continue;
                };
                let (handlers, tls) = (Arc::clone(&handlers), tls.clone());
                open.spawn(async move {
                    if let Err(e) = datafusion_postgres::pgwire::tokio::process_socket(socket, tls, handlers).await {
                        tracing::debug!(%peer, cause = %e, "connection ended with an error");
                    }
                    drop(permit);
                });
                while open.try_join_next().is_some() {}
            }
        }
    }
    drop(listener);
    gate.drain();
    let running = gate.running();
    info!(running, grace = %humantime::format_duration(opts.shutdown_grace), "shutting down: no new queries");
    if tokio::time::timeout(opts.shutdown_grace, gate.idle()).await.is_err() {
        warn!(running = gate.running(), "grace period over: closing connections with queries still running");
    }
    open.abort_all();
    while open.join_next().await.is_some() {}
    if let Some(mut task) = flight {
        if running > 0 {
            // A Flight SQL client closes its statement after the last batch: let that land.
            tokio::time::sleep(FLIGHT_LINGER).await;
        }
        flight_stop.cancel();
        if tokio::time::timeout(Duration::from_secs(2), &mut task).await.is_err() {
            task.abort();
        }
    }
    refresher.abort();
    info!("stopped");
    Ok(())
}

/// How long the Flight SQL endpoint stays up after the last query of a shutdown ended.
const FLIGHT_LINGER: Duration = Duration::from_secs(1);

/// Starts the Flight SQL endpoint on `listener`, until `stop` is cancelled (then calls in
/// flight finish; [`serve`] waits for them briefly).
fn spawn_flight(
    listener: TcpListener,
    gate: &Arc<gate::Gate>,
    opts: &ServeOptions,
    stop: CancellationToken,
) -> Result<tokio::task::JoinHandle<()>> {
    let addr = listener.local_addr()?;
    let mut server = tonic::transport::Server::builder();
    if let Some((cert, key)) = &opts.tls {
        let read = |path: &std::path::Path, key: &str| {
            std::fs::read(path).map_err(|e| Error::InvalidSetting {
                key: format!("serve.{key}"),
                message: format!("cannot read {}: {e}", path.display()),
            })
        };
        let identity = tonic::transport::Identity::from_pem(read(cert, "tls-cert")?, read(key, "tls-key")?);
        server = server.tls_config(tonic::transport::ServerTlsConfig::new().identity(identity)).map_err(|e| {
            Error::InvalidSetting { key: "serve.tls-cert".into(), message: format!("TLS for Flight SQL: {e}") }
        })?;
    }
    let service = flight::service(flight::FlightSql::new(Arc::clone(gate), opts.login.clone()));
    info!(%addr, tls = opts.tls.is_some(), password = opts.login.is_some(), "serving SQL (Arrow Flight SQL)");
    let incoming = tonic::transport::server::TcpIncoming::from(listener);
    Ok(tokio::spawn(async move {
        if let Err(e) = server.add_service(service).serve_with_incoming_shutdown(incoming, stop.cancelled_owned()).await
        {
            warn!(cause = %e, "the Flight SQL endpoint stopped with an error");
        }
    }))
}

/// The parameters of the feature views at a cutoff.
pub type FeatureParamsAt = Arc<dyn Fn(chrono::NaiveDate) -> crate::features::FeatureParams + Send + Sync>;

/// The lake's catalog as `query` opens it (see [`crate::query::catalog`]), feature views at a
/// fixed cutoff or, by default, at the nightly's cutoff for the clock's today.
pub struct LakeSource {
    lake: crate::lake::Lake,
    engine: crate::engine::EngineOptions,
    params: FeatureParamsAt,
    clock: Arc<dyn crate::clock::Clock>,
    cutoff: Option<chrono::NaiveDate>,
    extra: Vec<Arc<dyn crate::query::catalog::Extra>>,
}

impl LakeSource {
    /// The catalog of `lake`, its SQL run with `engine`, its feature views with `params`, with
    /// the `extra` tables (the run history).
    pub fn new(
        lake: crate::lake::Lake,
        engine: crate::engine::EngineOptions,
        params: FeatureParamsAt,
        clock: Arc<dyn crate::clock::Clock>,
        cutoff: Option<chrono::NaiveDate>,
        extra: Vec<Arc<dyn crate::query::catalog::Extra>>,
    ) -> Self {
        Self { lake, engine, params, clock, cutoff, extra }
    }
}

#[async_trait::async_trait]
impl Source for LakeSource {
    async fn version(&self) -> Result<String> {
        crate::query::catalog::version(&self.lake).await
    }

    async fn open(&self) -> Result<datafusion::prelude::SessionContext> {
        crate::query::catalog::open(
            &self.lake,
            self.engine.clone(),
            |c| (self.params)(c),
            self.clock.today(),
            self.cutoff,
            &self.extra,
        )
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolve(toml_text: &str, password: Option<&str>) -> Result<ServeOptions> {
        let s: ServeSettings = toml::from_str(toml_text).unwrap();
        let pw = password.map(str::to_string);
        ServeOptions::resolve(&s, |k| (k == "SHELFCAST_SERVE_PASSWORD").then(|| pw.clone()).flatten(), Some(1 << 30))
    }

    #[test]
    fn settings_resolve_with_the_password_from_the_environment_only() {
        let o = resolve("", None).unwrap();
        assert_eq!(o.listen, "127.0.0.1:5433");
        assert_eq!(o.flight_listen.as_deref(), Some("127.0.0.1:50051"));
        assert!(resolve("flight-listen = \"\"", None).unwrap().flight_listen.is_none(), "empty: off");
        assert!(o.login.is_none());
        assert_eq!(o.limits.memory, Some(1024 * 1024 * 1024));
        let o = resolve("user = \"bi\"\nquery-memory-mb = 0", Some("pw")).unwrap();
        assert_eq!(o.login.as_ref().map(|l| (l.user.as_str(), l.password.as_str())), Some(("bi", "pw")));
        assert_eq!(o.limits.memory, Some(1 << 30), "0: the session's budget");
        assert!(!format!("{o:?}").contains("pw\""), "the password is not in Debug output");
        assert!(resolve("", Some("")).unwrap().login.is_none(), "an empty variable is no password");
        // A password in the file is not a setting.
        assert!(toml::from_str::<ServeSettings>("password = \"x\"").is_err());
    }

    #[test]
    fn bad_limits_and_half_a_tls_pair_are_refused_by_name() {
        for (text, key) in [
            ("max-queries = 0", "serve.max-queries"),
            ("max-connections = 0", "serve.max-connections"),
            ("query-timeout = \"0s\"", "serve.query-timeout"),
            ("tls-cert = \"c.pem\"", "serve.tls-cert"),
        ] {
            let e = resolve(text, None).unwrap_err();
            assert!(e.to_string().contains(key), "{text}: {e}");
        }
    }

    #[tokio::test]
    async fn binding_off_loopback_needs_a_password() {
        let mut o = resolve("listen = \"0.0.0.0:0\"", None).unwrap();
        o.flight_listen = None;
        let e = bind(&o, "SHELFCAST_SERVE_PASSWORD").await.unwrap_err();
        assert!(e.to_string().contains("SHELFCAST_SERVE_PASSWORD"), "{e}");
        o.listen = "127.0.0.1:0".into();
        assert!(bind(&o, "SHELFCAST_SERVE_PASSWORD").await.unwrap().flight.is_none());
        o.flight_listen = Some("0.0.0.0:0".into());
        let e = bind(&o, "SHELFCAST_SERVE_PASSWORD").await.unwrap_err();
        assert!(e.to_string().contains("serve.flight-listen"), "{e}");
        o.flight_listen = Some("127.0.0.1:0".into());
        assert!(bind(&o, "SHELFCAST_SERVE_PASSWORD").await.unwrap().flight.is_some());
    }
}
