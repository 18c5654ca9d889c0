//! `strongroom`: parse the command line, run the command, report failure as one sentence.

use std::process::ExitCode;

use clap::Parser;
use strongroom::cli::{Cli, Command};
use tracing_subscriber::EnvFilter;

fn init_logging(json: bool) {
    let filter =
        EnvFilter::try_from_env("STRONGROOM_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if json {
        builder.json().flatten_event(true).init();
    } else {
        builder.init();
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve(args) => {
            init_logging(args.log_format == "json");
            serve(args).await
        }
        Command::Admin(cmd) => {
            init_logging(false);
            strongroom::commands::admin(cmd).await
        }
        Command::Keys(cmd) => {
            init_logging(false);
            strongroom::commands::keys(cmd).await
        }
        Command::Jobs(cmd) => {
            init_logging(false);
            strongroom::commands::jobs(cmd).await
        }
        Command::Storage(cmd) => {
            init_logging(false);
            match strongroom::commands::storage(cmd).await {
                Ok(true) => Ok(()),
                Ok(false) => return ExitCode::from(1),
                Err(e) => Err(e),
            }
        }
        Command::Backup(cmd) => {
            init_logging(false);
            match strongroom::backup::run(cmd).await {
                Ok(true) => Ok(()),
                Ok(false) => return ExitCode::from(1),
                Err(e) => Err(e),
            }
        }
        Command::Client(cmd) => return strongroom::client::run(cmd).await,
        Command::Spaces(cmd) => return strongroom::client::spaces(cmd).await,
        Command::Audit(cmd) => {
            init_logging(false);
            match strongroom::commands::audit(cmd).await {
                Ok(true) => Ok(()),
                Ok(false) => return ExitCode::from(1),
                Err(e) => Err(e),
            }
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}

async fn serve(args: strongroom::cli::ServeArgs) -> anyhow::Result<()> {
    let settings = strongroom::serve::ServeSettings::resolve(&args)?;
    let running = strongroom::serve::start(settings, strongroom::serve::signals()).await?;
    println!("Strongroom is serving https://{}", running.addr);
    running.done.await?
}
