//! `timescaledb-telemetry-receiver`: reads its configuration from the environment (see
//! `config`), prepares the store, and serves until SIGTERM or SIGINT.
//! `timescaledb-telemetry-receiver keygen DIR` makes the key pair that signs its answers.
//!
//! Start-up: the manifest and key are checked first (a bad one stops the start with its
//! reason); then the store is migrated, retried for up to a minute while PostgreSQL comes
//! up. Running: once an hour the store's partitions are made ahead and those past retention
//! dropped. Shutdown: on SIGTERM/SIGINT the listener closes and requests in flight finish
//! (a report being stored is committed and answered) before the process exits (`server`).
use std::process::ExitCode;
use std::time::Duration;

use timescaledb_telemetry_receiver::config::Config;
use timescaledb_telemetry_receiver::manifest::Manifest;
use timescaledb_telemetry_receiver::store::Store;
use timescaledb_telemetry_receiver::web::{router, App};
use tokio::signal::unix::{signal, SignalKind};

const STARTUP_WAIT: Duration = Duration::from_secs(60);
const MAINTENANCE_EVERY: Duration = Duration::from_secs(3600);

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("RECEIVER_LOG").unwrap_or_else(|_| "info".into()),
        )
        .with_ansi(false)
        .with_writer(std::io::stderr)
        .init();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let outcome = match args.as_slice() {
        [] => run().await,
        [keygen, dir] if keygen == "keygen" => {
            timescaledb_telemetry_receiver::manifest::keygen(std::path::Path::new(dir)).map(|public| {
                println!("{dir}/receiver.key signs the answers (RECEIVER_SECRET_KEY); the servers trust:");
                println!("timescaledb_telemetry.trusted_keys = '{public}'");
            })
        }
        _ => {
            Err("usage: timescaledb-telemetry-receiver [keygen DIR]   (configuration: RECEIVER_* variables)"
                .into())
        }
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(why) => {
            tracing::error!("{why}");
            ExitCode::FAILURE
        }
    }
}

async fn run() -> Result<(), String> {
    let config = Config::from_vars(|name| std::env::var(name).ok())?;
    let manifest = Manifest::load(&config.manifest, config.secret_key.as_deref())?;
    let store = Store::new(&config.database_url, config.pool_size)?;
    migrate(&store, config.retention_days).await?;

    let maintenance = {
        let store = store.clone();
        let days = config.retention_days;
        tokio::spawn(async move {
            let mut every = tokio::time::interval(MAINTENANCE_EVERY);
            every.tick().await; // the first tick is now: migrate() just did it
            loop {
                every.tick().await;
                if let Err(e) = store.maintain(days).await {
                    tracing::warn!("store maintenance failed (retried in an hour): {e:?}");
                }
            }
        })
    };

    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", config.listen))?;
    let address = listener.local_addr().map_err(|e| e.to_string())?;
    tracing::info!(
        signed = config.secret_key.is_some(),
        "listening on http://{address} (reports: POST /v1/metrics, fleet page: GET /)"
    );
    let app = App::new(store, manifest, &config.page_token, config.pool_size);
    timescaledb_telemetry_receiver::server::serve(listener, router(app), shutdown()).await;
    maintenance.abort();
    tracing::info!("stopped");
    Ok(())
}

/// Migrates the store, retrying while it is not reachable yet (a receiver started with its
/// PostgreSQL, or before it).
async fn migrate(store: &Store, retention_days: u32) -> Result<(), String> {
    let deadline = tokio::time::Instant::now() + STARTUP_WAIT;
    loop {
        match store.migrate(retention_days).await {
            Ok(()) => return Ok(()),
            Err(timescaledb_telemetry_receiver::store::StoreError::Unavailable(why))
                if tokio::time::Instant::now() < deadline =>
            {
                tracing::warn!("store not reachable yet, retrying: {why}");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            Err(e) => return Err(format!("cannot prepare the store: {e:?}")),
        }
    }
}

async fn shutdown() {
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    let mut int = signal(SignalKind::interrupt()).expect("SIGINT handler");
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    tracing::info!("shutting down: finishing requests in flight");
}
