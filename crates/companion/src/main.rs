//! `quire-companion`: Quire's trusted backend.
//!
//! ```text
//! quire-companion [serve]                 run the server (QUIRE_COMPANION_* settings)
//! quire-companion provision --out <file>  find or create the agent and knowledge base,
//!                                         write {"agent_id", "knowledge_base_id"} to <file>
//! quire-companion migrate [--dry-run | status]   apply db/app (QUIRE_COMPANION_DATABASE_URL)
//! quire-companion doctor [--run]          check a deployment, one line per check
//! ```

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use quire_companion::config::{Config, PlatformConfig};
use quire_companion::platform::Platform;
use quire_companion::provision;

const USAGE: &str = "usage:
  quire-companion [serve]
      Runs the companion. Settings come from QUIRE_COMPANION_* environment
      variables (crates/companion/README.md lists them; the startup error
      names anything missing or malformed).
  quire-companion provision [--out <file>]
      Finds or creates Quire's agent and knowledge base on the platform
      (QUIRE_COMPANION_API_URL, QUIRE_COMPANION_ANON_KEY,
      QUIRE_COMPANION_SERVICE_ROLE_KEY) and prints, or writes to <file>,
      {\"agent_id\": …, \"knowledge_base_id\": …}. Ids already in <file> are
      reused while they exist.
  quire-companion migrate [--dry-run | status]
      Applies db/app (built into this binary) to the database
      QUIRE_COMPANION_DATABASE_URL names, each file once, in one transaction,
      recorded in supabase_migrations.schema_migrations as the Supabase CLI
      records it. --dry-run prints what would be applied; status lists the
      applied and pending files. Refuses a database that is not a Powabase
      project's.
  quire-companion doctor [--run]
      Checks the deployment the QUIRE_COMPANION_* settings describe (and
      QUIRE_COMPANION_DATABASE_URL): one line per check, ok or FAIL with
      the fix, or SKIP when it needs what a failed check lacks; exits
      non-zero if anything fails. --run also runs the agent once (costs
      one run).";

fn main() -> ExitCode {
    init_logs();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("quire-companion: cannot start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    let result = match args.first().map(String::as_str) {
        None | Some("serve") if args.len() <= 1 => runtime.block_on(serve()),
        Some("provision") => match provision_out(&args[1..]) {
            Ok(out) => runtime.block_on(run_provision(out)),
            Err(err) => Err(err),
        },
        Some("migrate") => runtime.block_on(quire_companion::migrate::command(&args[1..])),
        Some("doctor") => runtime.block_on(quire_companion::doctor::command(&args[1..])),
        Some("-h" | "--help" | "help") => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        _ => Err(anyhow::anyhow!("unknown arguments {args:?}\n{USAGE}")),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("quire-companion: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn init_logs() {
    use tracing_subscriber::prelude::*;

    let asked = std::env::var("QUIRE_COMPANION_LOG").unwrap_or_else(|_| "info".into());
    let _ = tracing_subscriber::registry()
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(std::io::stderr)
                .with_filter(quire_companion::logs::filter(&asked)),
        )
        .try_init();
}

fn provision_out(args: &[String]) -> anyhow::Result<Option<PathBuf>> {
    match args {
        [] => Ok(None),
        [flag, path] if flag == "--out" => Ok(Some(PathBuf::from(path))),
        _ => Err(anyhow::anyhow!("unknown arguments {args:?}\n{USAGE}")),
    }
}

async fn serve() -> anyhow::Result<()> {
    let config = Config::from_env()?;
    let mut signals = Signals::install()?;
    let companion = quire_companion::spawn(config).await?;
    let stop = companion.shutdown_handle();
    let no_grace = companion.no_grace_handle();
    tokio::spawn(async move {
        signals.next().await;
        tracing::info!(
            "shutting down; a second SIGTERM or Ctrl-C ends the answers still running now"
        );
        stop.cancel();
        // As servers do: asked twice, stop without waiting.
        signals.next().await;
        tracing::warn!("asked again: ending the answers still running now");
        no_grace.cancel();
    });
    companion.wait().await
}

/// SIGTERM and Ctrl-C, each time one arrives: the handlers stay installed
/// between the first and the second, so none is missed.
struct Signals {
    #[cfg(unix)]
    term: tokio::signal::unix::Signal,
    #[cfg(unix)]
    interrupt: tokio::signal::unix::Signal,
}

impl Signals {
    fn install() -> anyhow::Result<Signals> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            Ok(Signals {
                term: signal(SignalKind::terminate()).context("listening for SIGTERM")?,
                interrupt: signal(SignalKind::interrupt()).context("listening for Ctrl-C")?,
            })
        }
        #[cfg(not(unix))]
        Ok(Signals {})
    }

    async fn next(&mut self) {
        #[cfg(unix)]
        tokio::select! {
            _ = self.term.recv() => {}
            _ = self.interrupt.recv() => {}
        }
        #[cfg(not(unix))]
        let _ = tokio::signal::ctrl_c().await;
    }
}

async fn run_provision(out: Option<PathBuf>) -> anyhow::Result<()> {
    let config = PlatformConfig::from_env()?;
    let platform = Platform::new(&config)?;
    let known = out.as_deref().and_then(provision::read_known);
    let ids = provision::provision(&platform, known)
        .await
        .context("provisioning the agent and knowledge base")?;
    match out {
        Some(path) => {
            provision::write(&path, &ids)?;
            tracing::info!(agent_id = %ids.agent_id, knowledge_base_id = %ids.knowledge_base_id,
                           file = %path.display(), "provisioned");
        }
        None => println!("{}", serde_json::to_string(&ids)?),
    }
    Ok(())
}
