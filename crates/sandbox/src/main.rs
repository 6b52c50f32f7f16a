//! `quire-sandbox`: runs the local Powabase stand-in until SIGINT or SIGTERM.
//!
//! ```text
//! quire-sandbox [OPTIONS]                 serve (see --help for every option)
//! quire-sandbox keys --out <FILE>         write the project keys as JSON and exit
//! ```

use std::path::PathBuf;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use quire_sandbox::Config;
use quire_sandbox::keys::ProjectKeys;
use tracing_subscriber::prelude::*;

#[derive(Parser)]
#[command(
    name = "quire-sandbox",
    version,
    about = "A local Powabase project over PostgreSQL."
)]
struct Cli {
    #[command(flatten)]
    config: Config,

    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Write `{api_url, anon_key, service_role_key, jwt_secret}` (0600) to a
    /// file and exit, creating the data directory's secret if needed. The
    /// `api_url` is `--api-url`, or `http://<--listen>`.
    Keys {
        /// The file to write.
        #[arg(long)]
        out: PathBuf,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let asked =
        std::env::var("QUIRE_SANDBOX_LOG").unwrap_or_else(|_| "info,tower_http=warn".into());
    tracing_subscriber::registry()
        .with(
            tracing_subscriber::fmt::layer()
                .with_target(false)
                .with_filter(quire_sandbox::logs::filter(&asked)),
        )
        .init();

    match cli.command {
        Some(Command::Keys { out }) => write_keys(&cli.config, &out),
        None => serve(cli.config).await,
    }
}

fn write_keys(config: &Config, out: &std::path::Path) -> anyhow::Result<()> {
    let keys = ProjectKeys::load_or_create(&config.data_dir, config.jwt_secret.as_ref())?;
    let api_url = match &config.api_url {
        Some(url) => url.clone(),
        None => url::Url::parse(&format!("http://{}", config.listen))
            .context("building the API URL from --listen")?,
    };
    keys.write_keys_file(out, &api_url)?;
    Ok(())
}

async fn serve(config: Config) -> anyhow::Result<()> {
    let sandbox = quire_sandbox::spawn(config).await?;
    let stop = sandbox.shutdown_handle();
    tokio::spawn(async move {
        wait_for_signal().await;
        tracing::info!("shutting down");
        stop.cancel();
    });
    sandbox.wait().await
}

async fn wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("installing the SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}
