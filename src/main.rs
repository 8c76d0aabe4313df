//! The `kfac-check` binary: a thin layer over the library.
use clap::{Parser, Subcommand};
use kfac_check::cli::TrainArgs;
use std::process::ExitCode;

#[derive(Parser)]
#[command(name = "kfac-check", version, about = "An exact float64 reference for ENGD and KFAC on Poisson PINNs")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Train like the original `python train.py`, printing the same log lines.
    Train {
        #[command(flatten)]
        args: TrainArgs,
    },
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Train { args } => {
            let config = args.to_config()?;
            let stdout = std::io::stdout();
            kfac_check::train::train(&config, &mut stdout.lock(), &mut kfac_check::optimizer::NoObserver)?;
        }
    }
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}
