//! The `kfac-check` binary: a thin layer over the library.
use anyhow::{Result, bail};
use clap::{Parser, Subcommand};
use kfac_check::cli::TrainArgs;
use kfac_check::lockstep::Follow;
use kfac_check::output_file::{check_writable, write_atomically};
use kfac_check::{dump, golden, optimizer::NoObserver, pool, train};
use std::path::PathBuf;
use std::process::ExitCode;

// Every step allocates its traces and Jacobians afresh (megabytes each);
// mimalloc keeps the freed pages, where glibc unmaps them and every step
// pays the page faults again.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "kfac-check",
    version,
    about = "An exact float64 reference for ENGD and KFAC on Poisson PINNs"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Train like the original `python train.py`, printing the same log lines.
    Train {
        /// No progress bar (it is drawn only when stderr is a terminal anyway).
        #[arg(long)]
        quiet: bool,
        #[command(flatten)]
        args: TrainArgs,
    },
    /// Write one step's internals (gradients, Gramians, Kronecker factors,
    /// directions, step sizes) as JSON, after `--step` optimizer steps.
    Dump {
        /// The step to dump (0 = at initialisation).
        #[arg(long)]
        step: usize,
        /// The JSON file to write (atomically).
        #[arg(long)]
        out: PathBuf,
        /// Also write every matrix as a numpy `.npz` archive.
        #[arg(long)]
        npz: Option<PathBuf>,
        #[command(flatten)]
        args: TrainArgs,
    },
    /// KFAC against ENGD step by step from the same parameters: per layer
    /// and term the Kronecker approximation error, the two directions, the
    /// two line searches, and the first step/layer/quantity out of tolerance.
    Compare {
        /// How many steps to compare.
        #[arg(long, default_value_t = 10)]
        steps: usize,
        /// Tolerance for the verdict (relative).
        #[arg(long, default_value_t = 1e-6)]
        rtol: f64,
        /// Which optimizer moves the parameters: engd or kfac.
        #[arg(long, default_value = "engd", value_parser = ["engd", "kfac"])]
        follow: String,
        /// Print JSON instead of tables.
        #[arg(long)]
        json: bool,
        /// Also draw heatmaps of each layer's exact block, B ⊗ A and their
        /// difference at the first step into this directory.
        #[arg(long)]
        plot: Option<PathBuf>,
        #[command(flatten)]
        args: TrainArgs,
    },
    /// Compare two dumps (B against the reference A) quantity by quantity and
    /// name known mismatch shapes. Exit 0 if all agree, 1 if some differ.
    Diff {
        a: PathBuf,
        b: PathBuf,
        /// Relative tolerance: |b − a| ≤ atol + rtol·|a|.
        #[arg(long, default_value_t = 1e-10)]
        rtol: f64,
        /// Absolute tolerance.
        #[arg(long, default_value_t = 0.0)]
        atol: f64,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Replay a markdown debugging log: run each `python train.py` command,
    /// compare with its documented output, and trace blocks that do not
    /// reproduce to the configuration that produced them.
    Replay {
        /// The markdown log.
        log: PathBuf,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
        /// Skip the provenance search.
        #[arg(long)]
        no_search: bool,
        /// Also draw the trajectories (documented vs ours) into this directory.
        #[arg(long)]
        plot: Option<PathBuf>,
    },
    /// Draw a log's trajectories, documented vs ours (Loss and L2 error,
    /// log scale), as PNG and SVG: `replay --no-search --plot DIR`.
    Plot {
        /// The markdown log.
        log: PathBuf,
        /// The directory for the pictures.
        #[arg(long)]
        out: PathBuf,
    },
    /// Time representative runs: whole-process wall time, and per step the
    /// split into linearisation, curvature, solve and line search (medians
    /// of --repeats).
    Bench {
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..))]
        repeats: u64,
        /// Also time 5 steps at N_Omega = 900, 3000, 10000 for both models
        /// with ENGD per_layer, ENGD full and KFAC.
        #[arg(long)]
        scaling: bool,
        /// Also time a full replay (with provenance search) of this log,
        /// as a whole process.
        #[arg(long)]
        replay: Option<PathBuf>,
    },
    /// Regenerate or check the golden logs under `snapshots/`.
    Golden {
        /// Rewrite every golden log from our output.
        #[arg(long, conflicts_with = "check")]
        regen: bool,
        /// Report any golden log that differs from our output (exit 1).
        #[arg(long)]
        check: bool,
        /// The repository root holding `fixtures/` and `snapshots/`.
        #[arg(long, default_value = ".")]
        root: PathBuf,
    },
}

fn run(cli: Cli) -> Result<ExitCode> {
    match cli.command {
        Command::Train { quiet, args } => {
            let config = args.to_config()?;
            let stdout = std::io::stdout();
            if quiet {
                train::train(&config, &mut stdout.lock(), &mut NoObserver)?;
            } else {
                let mut progress = Progress::new(config.num_steps as u64);
                train::train(&config, &mut stdout.lock(), &mut progress)?;
                progress.bar.finish_and_clear();
            }
        }
        Command::Dump {
            step,
            out,
            npz,
            args,
        } => {
            args.to_config()?;
            check_writable(&out)?;
            if let Some(npz) = &npz {
                check_writable(npz)?;
            }
            let dump = dump::dump_at(&args, step)?;
            write_atomically(&out, &serde_json::to_vec(&dump)?)?;
            if let Some(npz) = &npz {
                dump::write_npz(&dump, npz)?;
            }
        }
        Command::Compare {
            steps,
            rtol,
            follow,
            json,
            plot,
            args,
        } => {
            if steps == 0 {
                bail!("--steps must be at least 1, got 0");
            }
            if rtol.is_nan() || rtol < 0.0 {
                bail!("--rtol must be ≥ 0, got {rtol}");
            }
            let follow = if follow == "kfac" {
                Follow::Kfac
            } else {
                Follow::Engd
            };
            let comparison = kfac_check::compare::compare(&args, follow, steps, rtol)?;
            if let Some(dir) = plot {
                for path in kfac_check::compare::plot_heatmaps(&args, &dir)? {
                    eprintln!("wrote {}", path.display());
                }
            }
            if json {
                println!("{}", serde_json::to_string_pretty(&comparison)?);
            } else {
                print!("{}", kfac_check::compare::render(&comparison));
            }
        }
        Command::Diff {
            a,
            b,
            rtol,
            atol,
            json,
        } => {
            if rtol.is_nan() || atol.is_nan() || rtol < 0.0 || atol < 0.0 {
                bail!("--rtol and --atol must be ≥ 0");
            }
            let (da, db) = (
                kfac_check::diff::read_dump(&a)?,
                kfac_check::diff::read_dump(&b)?,
            );
            let report =
                kfac_check::diff::diff(&da, &db, kfac_check::diff::Tolerance { rtol, atol })?;
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                print!("{}", kfac_check::diff::render(&report));
            }
            if report.mismatched().next().is_some() {
                return Ok(ExitCode::from(1));
            }
        }
        Command::Plot { log, out } => {
            let report = kfac_check::replay::replay(&log, false)?;
            for path in kfac_check::replay::plot(&report, &out)? {
                println!("wrote {}", path.display());
            }
        }
        Command::Replay {
            log,
            json,
            no_search,
            plot,
        } => {
            let report = kfac_check::replay::replay(&log, !no_search)?;
            if let Some(dir) = plot {
                for path in kfac_check::replay::plot(&report, &dir)? {
                    eprintln!("wrote {}", path.display());
                }
            }
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                print!("{}", kfac_check::replay::render(&report));
            }
        }
        Command::Bench {
            repeats,
            scaling,
            replay,
        } => {
            let exe = std::env::current_exe()?;
            let (timings, replay) =
                kfac_check::bench::bench(repeats as usize, scaling, replay.as_deref(), Some(&exe))?;
            print!("{}", kfac_check::bench::render(&timings, replay));
        }
        Command::Golden { regen, check, root } => {
            if regen {
                for path in golden::regenerate(&root)? {
                    println!("wrote {}", path.display());
                }
            } else if check {
                let mut differ = 0;
                for status in golden::statuses(&root)? {
                    if status.matches() {
                        println!("ok       {}", status.path.display());
                    } else {
                        differ += 1;
                        println!("DIFFERS  {}", status.path.display());
                        let stored = status.stored.as_deref().unwrap_or("");
                        for (s, o) in stored
                            .lines()
                            .zip(status.ours.lines())
                            .filter(|(s, o)| s != o)
                        {
                            println!("  stored: {s}\n  ours:   {o}");
                        }
                        if status.stored.is_none() {
                            println!("  (missing or unreadable)");
                        }
                    }
                }
                if differ > 0 {
                    println!(
                        "{differ} golden log(s) differ; `kfac-check golden --regen` rewrites them"
                    );
                    return Ok(ExitCode::from(1));
                }
            } else {
                bail!("golden needs --regen or --check");
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // `bench` times other processes: it keeps the workers awake only
    // around its own in-process runs.
    let result = pool::build_global()
        .map_err(anyhow::Error::from)
        .and_then(|()| match cli.command {
            Command::Bench { .. } => run(cli),
            _ => pool::with_awake_workers(|| run(cli)),
        });
    match result {
        Ok(code) => code,
        Err(e) if is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

/// `kfac-check train … | head` closes stdout early: not an error of ours.
fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

/// A progress bar on stderr (steps per second, ETA); indicatif draws nothing
/// when stderr is not a terminal, so logs and pipes stay clean.
struct Progress {
    bar: indicatif::ProgressBar,
}

impl Progress {
    fn new(steps: u64) -> Self {
        let bar = indicatif::ProgressBar::new(steps);
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{bar:40} {pos}/{len} steps, {per_sec}, ETA {eta}",
            )
            .expect("valid template"),
        );
        Self { bar }
    }
}

impl kfac_check::optimizer::Observer for Progress {
    fn observe(&mut self, _: &kfac_check::optimizer::StepRecord<'_>) {
        self.bar.inc(1);
    }
}
