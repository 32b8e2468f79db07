//! `shelfcast serve`: the read-only SQL endpoint (PostgreSQL wire protocol and Arrow Flight
//! SQL) over the lake's catalog, until a stop signal.

use std::sync::Arc;

use chrono::NaiveDate;
use shelfcast::jobs::history;
use shelfcast::jobs::runner::Shutdown;
use shelfcast::query;
use shelfcast::serve::{self, Live, ServeOptions};

use super::Cx;
use super::jobs::on_stop_signals;

pub(super) async fn serve(
    cx: Cx,
    listen: Option<String>,
    flight_listen: Option<String>,
    cutoff: Option<NaiveDate>,
) -> anyhow::Result<()> {
    let Cx { settings, lake, clock, .. } = cx;
    let mut s = settings.serve.clone();
    if let Some(l) = listen {
        s.listen = l;
    }
    if let Some(l) = flight_listen {
        s.flight_listen = l;
    }
    let engine = settings.engine_options();
    let opts = ServeOptions::resolve(&s, |k| std::env::var(k).ok(), engine.memory_limit)?;
    let tls = opts.tls_acceptor()?;
    let endpoints = serve::bind(&opts, &s.password_env).await?;
    let addr = endpoints.pg.local_addr()?;
    let flight_addr = endpoints.flight.as_ref().map(|l| l.local_addr()).transpose()?;
    let params: serve::FeatureParamsAt = {
        let settings = settings.clone();
        Arc::new(move |c| settings.feature_params(c))
    };
    let runs: Arc<dyn query::catalog::Extra> = Arc::new(history::RunsTable);
    let source = serve::LakeSource::new(lake.clone(), settings.engine_options(), params, clock, cutoff, vec![runs]);
    let live = Arc::new(Live::open(Arc::new(source), serve::session::hooks()).await?);
    let security = format!(
        "{}, {}",
        if opts.tls.is_some() { "TLS available" } else { "no TLS" },
        if opts.login.is_some() { "password required" } else { "no password" },
    );
    eprintln!("shelfcast serve: listening on {addr} (PostgreSQL wire protocol; {security}); lake {lake}");
    if let Some(f) = flight_addr {
        let scheme = if opts.tls.is_some() { "grpc+tls" } else { "grpc" };
        eprintln!("shelfcast serve: Flight SQL on {scheme}://{f} (Arrow Flight SQL; {security})");
    }
    eprintln!("shelfcast serve: SIGINT/SIGTERM to stop");
    let shutdown = Shutdown::default();
    on_stop_signals(shutdown.clone());
    tokio::select! {
        r = serve::serve(endpoints, live, opts, tls, shutdown.drain.clone()) => r?,
        _ = shutdown.abort.cancelled() => {}
    }
    Ok(())
}
