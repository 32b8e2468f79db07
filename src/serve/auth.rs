//! Who may connect, and over what: the startup handshake and TLS.
//!
//! Without a password the server answers anyone who reaches it, which [`super::bind`] allows
//! on loopback only. With one (from the environment), clients log in with SCRAM-SHA-256, as
//! PostgreSQL does by default: the password never crosses the wire, and a wrong user name is
//! refused exactly like a wrong password. With a certificate and key, clients may switch to
//! TLS (`sslmode=require`).

use std::fmt::Debug;
use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion_postgres::pgwire::api::auth::noop::NoopStartupHandler;
use datafusion_postgres::pgwire::api::auth::sasl::SASLAuthStartupHandler;
use datafusion_postgres::pgwire::api::auth::sasl::scram::{SCRAM_ITERATIONS, ScramAuth, gen_salted_password};
use datafusion_postgres::pgwire::api::auth::{
    AuthSource, DefaultServerParameterProvider, LoginInfo, Password, StartupHandler,
};
use datafusion_postgres::pgwire::api::cancel::{CancelHandler, DefaultCancelHandler};
use datafusion_postgres::pgwire::api::query::{ExtendedQueryHandler, SimpleQueryHandler};
use datafusion_postgres::pgwire::api::{ClientInfo, ConnectionManager, PgWireServerHandlers};
use datafusion_postgres::pgwire::error::{PgWireError, PgWireResult};
use datafusion_postgres::pgwire::messages::{PgWireBackendMessage, PgWireFrontendMessage};
use futures::Sink;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::ServerConfig;

use super::session::Service;
use crate::error::{Error, Result};

/// The user name and password clients must give.
#[derive(Clone)]
pub struct Login {
    /// User name.
    pub user: String,
    /// Password (from the environment).
    pub password: String,
}

impl Debug for Login {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Login").field("user", &self.user).field("password", &"***").finish()
    }
}

#[async_trait]
impl AuthSource for Login {
    async fn get_password(&self, login: &LoginInfo) -> PgWireResult<Password> {
        let salt: [u8; 16] = rand::random();
        // An unknown user gets a password nobody knows: refused like a wrong password.
        let secret = if login.user() == Some(self.user.as_str()) {
            self.password.clone()
        } else {
            hex::encode(rand::random::<[u8; 32]>())
        };
        Ok(Password::new(Some(salt.to_vec()), gen_salted_password(&secret, &salt, SCRAM_ITERATIONS)))
    }
}

/// The handlers of every connection.
pub struct Handlers {
    service: Arc<Service>,
    login: Option<Arc<Login>>,
    connections: Arc<ConnectionManager>,
}

impl Handlers {
    /// Handlers answering with `service`, asking for `login` when set.
    pub fn new(service: Arc<Service>, login: Option<Login>) -> Self {
        Self { service, login: login.map(Arc::new), connections: Arc::new(ConnectionManager::new()) }
    }
}

impl PgWireServerHandlers for Handlers {
    fn simple_query_handler(&self) -> Arc<impl SimpleQueryHandler> {
        Arc::clone(&self.service)
    }

    fn extended_query_handler(&self) -> Arc<impl ExtendedQueryHandler> {
        Arc::clone(&self.service)
    }

    fn startup_handler(&self) -> Arc<impl StartupHandler> {
        // A new handler per connection: the SCRAM exchange keeps state.
        Arc::new(match &self.login {
            None => Startup::Open(Open { connections: Arc::clone(&self.connections) }),
            Some(login) => {
                let source: Arc<dyn AuthSource> = Arc::clone(login) as Arc<dyn AuthSource>;
                let mut scram = ScramAuth::new(source);
                scram.set_iterations(SCRAM_ITERATIONS);
                let mut params = DefaultServerParameterProvider::default();
                params.default_transaction_read_only = true;
                params.is_superuser = false;
                Startup::Scram(Box::new(
                    SASLAuthStartupHandler::new(Arc::new(params))
                        .with_scram(scram)
                        .with_connection_manager(Arc::clone(&self.connections)),
                ))
            }
        })
    }

    fn cancel_handler(&self) -> Arc<impl CancelHandler> {
        Arc::new(DefaultCancelHandler::new(Arc::clone(&self.connections)))
    }
}

/// The startup of one connection: open, or with a SCRAM login.
enum Startup {
    Open(Open),
    Scram(Box<SASLAuthStartupHandler<DefaultServerParameterProvider>>),
}

/// No authentication (loopback without a password).
struct Open {
    connections: Arc<ConnectionManager>,
}

impl NoopStartupHandler for Open {
    fn connection_manager(&self) -> Option<Arc<ConnectionManager>> {
        Some(Arc::clone(&self.connections))
    }
}

#[async_trait]
impl StartupHandler for Startup {
    async fn on_startup<C>(&self, client: &mut C, message: PgWireFrontendMessage) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        match self {
            Startup::Open(h) => h.on_startup(client, message).await,
            Startup::Scram(h) => h.on_startup(client, message).await,
        }
    }
}

/// TLS from a PEM certificate chain and private key; an error names the file.
pub fn tls_acceptor(cert: &Path, key: &Path) -> Result<TlsAcceptor> {
    let bad = |path: &Path, message: String| Error::InvalidSetting {
        key: "serve.tls".into(),
        message: format!("{}: {message}", path.display()),
    };
    let read = |path: &Path| std::fs::read(path).map_err(|e| bad(path, e.to_string()));
    let certs: Vec<_> = rustls_pemfile::certs(&mut read(cert)?.as_slice())
        .collect::<std::result::Result<_, _>>()
        .map_err(|e| bad(cert, format!("not a PEM certificate: {e}")))?;
    if certs.is_empty() {
        return Err(bad(cert, "no certificate in the file".into()));
    }
    let private = rustls_pemfile::private_key(&mut read(key)?.as_slice())
        .map_err(|e| bad(key, format!("not a PEM private key: {e}")))?
        .ok_or_else(|| bad(key, "no private key in the file".into()))?;
    let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
    let config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| bad(cert, e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, private)
        .map_err(|e| bad(key, format!("not a key for the certificate {}: {e}", cert.display())))?;
    Ok(TlsAcceptor::from(Arc::new(config)))
}
