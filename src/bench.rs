//! `kfac-check bench`: wall time per step of representative runs, split into
//! linearisation (forward Laplacian, backward pass, gradient), curvature
//! (Jacobians, Gramians or Kronecker factors, moving averages), solve
//! (factorisations and solves) and line search; and, when the binary is
//! given, the whole-process wall time of the same command.

use crate::debug_log::parse_train_args;
use crate::optimizer::NoObserver;
use crate::train::Trainer;
use anyhow::{Result, bail};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

pub struct Scenario {
    pub name: &'static str,
    pub flags: &'static str,
    /// Steps timed (the documented runs take 100; the big ones fewer).
    pub steps: usize,
}

pub const SCENARIOS: [Scenario; 4] = [
    Scenario {
        name: "ENGD per_layer (documented, N_Ω=900, N_∂=120)",
        flags: "--optimizer=ENGD --num_steps=100 --max_logs=10 --ENGD_damping=1e-8 --ENGD_approximation=per_layer",
        steps: 100,
    },
    Scenario {
        name: "KFAC plain (documented)",
        flags: "--optimizer=KFAC --num_steps=100 --max_logs=10 --KFAC_ema_factor=0.0 --KFAC_damping=1e-8",
        steps: 100,
    },
    Scenario {
        name: "ENGD full (N_Ω=900, N_∂=120)",
        flags: "--optimizer=ENGD --num_steps=100 --max_logs=10 --ENGD_damping=1e-8",
        steps: 100,
    },
    Scenario {
        name: "KFAC, mlp-tanh-64-48-32-16, d=5, N_Ω=3000, N_∂=500",
        flags: "--optimizer=KFAC --KFAC_damping=1e-8 --model=mlp-tanh-64-48-32-16 --dim_Omega=5 --N_Omega=3000 --N_dOmega=500",
        steps: 5,
    },
];

/// One timed run: `wall` includes the set-up; `process` is the whole
/// process (start-up, set-up, steps, log), when measured.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Timing {
    pub name: String,
    pub steps: usize,
    pub wall: Duration,
    pub process: Option<Duration>,
    pub linearize: Duration,
    pub curvature: Duration,
    pub solve: Duration,
    pub line_search: Duration,
}

pub fn time_run(name: &str, flags: &str, steps: usize) -> Result<Timing> {
    let args: Vec<String> = flags.split_whitespace().map(str::to_string).collect();
    let config = parse_train_args(&args)?.to_config()?;
    let start = Instant::now();
    let mut trainer = Trainer::new(&config);
    let mut t = Timing {
        name: name.to_string(),
        steps,
        wall: Duration::ZERO,
        process: None,
        linearize: Duration::ZERO,
        curvature: Duration::ZERO,
        solve: Duration::ZERO,
        line_search: Duration::ZERO,
    };
    for _ in 0..steps {
        let timings = trainer.step(&mut NoObserver)?.timings;
        t.linearize += timings.linearize;
        t.curvature += timings.curvature;
        t.solve += timings.solve;
        t.line_search += timings.line_search;
    }
    t.wall = start.elapsed();
    Ok(t)
}

/// The median whole-process wall time of `exe args…` over `repeats` runs
/// (output discarded), as a user timing the command would measure it.
pub fn process_wall(exe: &Path, args: &[String], repeats: usize) -> Result<Duration> {
    let mut walls = (0..repeats.max(1))
        .map(|_| {
            let start = Instant::now();
            let status = Command::new(exe)
                .args(args)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()?;
            if !status.success() {
                bail!("{} {} failed: {status}", exe.display(), args.join(" "));
            }
            Ok(start.elapsed())
        })
        .collect::<Result<Vec<_>>>()?;
    walls.sort();
    Ok(walls[walls.len() / 2])
}

/// The median (by wall time) of `repeats` runs.
pub fn median_run(name: &str, flags: &str, steps: usize, repeats: usize) -> Result<Timing> {
    // As the binary runs it (see `pool`).
    let mut runs = crate::pool::with_awake_workers(|| {
        (0..repeats.max(1))
            .map(|_| time_run(name, flags, steps))
            .collect::<Result<Vec<_>>>()
    })?;
    runs.sort_by_key(|t| t.wall);
    Ok(runs.swap_remove(runs.len() / 2))
}

/// The benchmark table: every scenario (with its whole-process time when
/// `exe`, the kfac-check binary, is given), plus the time per step against
/// `N_Ω` (900, 3000, 10000) with `scaling`, and a full replay of `seed_log`.
pub fn bench(
    repeats: usize,
    scaling: bool,
    seed_log: Option<&Path>,
    exe: Option<&Path>,
) -> Result<(Vec<Timing>, Option<Duration>)> {
    let mut out = Vec::new();
    for s in &SCENARIOS {
        let mut timing = median_run(s.name, s.flags, s.steps, repeats)?;
        if let (Some(exe), true) = (exe, s.steps == 100) {
            let mut args = vec!["train".to_string(), "--quiet".to_string()];
            args.extend(s.flags.split_whitespace().map(str::to_string));
            timing.process = Some(process_wall(exe, &args, repeats)?);
        }
        out.push(timing);
    }
    if scaling {
        for n in [900, 3000, 10000] {
            for (model, optimizer) in [
                ("mlp-tanh-64", "ENGD --ENGD_approximation=per_layer"),
                ("mlp-tanh-64", "ENGD"),
                ("mlp-tanh-64", "KFAC"),
                (
                    "mlp-tanh-64-48-32-16",
                    "ENGD --ENGD_approximation=per_layer",
                ),
                ("mlp-tanh-64-48-32-16", "ENGD"),
                ("mlp-tanh-64-48-32-16", "KFAC"),
            ] {
                let flags = format!(
                    "--optimizer={optimizer} --ENGD_damping=1e-8 --KFAC_damping=1e-8 --model={model} --N_Omega={n}"
                );
                let name = format!("scaling: {optimizer}, {model}, N_Ω={n}")
                    .replace(" --ENGD_approximation=", " ");
                out.push(median_run(&name, &flags, 5, repeats)?);
            }
        }
    }
    let replay = match seed_log {
        Some(path) => Some(match exe {
            Some(exe) => {
                let args = vec!["replay".to_string(), path.display().to_string()];
                process_wall(exe, &args, repeats)?
            }
            None => {
                let mut walls = crate::pool::with_awake_workers(|| {
                    (0..repeats.max(1))
                        .map(|_| {
                            let start = Instant::now();
                            crate::replay::replay(path, true).map(|_| start.elapsed())
                        })
                        .collect::<Result<Vec<_>>>()
                })?;
                walls.sort();
                walls[walls.len() / 2]
            }
        }),
        None => None,
    };
    Ok((out, replay))
}

/// Which processor and how many threads the numbers come from: timings
/// from one VM move with the processor it happens to run on, so a table
/// without it cannot be compared with another.
pub fn machine() -> String {
    let processor = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|text| processor_from_cpuinfo(&text))
        .unwrap_or_else(|| "processor unknown".to_string());
    format!("{processor}, {} threads", rayon::current_num_threads())
}

/// `model name (family F, model M)` of the first processor in a Linux
/// `/proc/cpuinfo`: the name alone does not tell a VM's processors apart
/// (KVM reports "Intel(R) Xeon(R) Processor" for several generations).
pub fn processor_from_cpuinfo(cpuinfo: &str) -> Option<String> {
    let first = cpuinfo.split("\n\n").next()?;
    let field = |key: &str| {
        first.lines().find_map(|line| {
            let (k, v) = line.split_once(':')?;
            (k.trim() == key).then(|| v.trim().to_string())
        })
    };
    let name = field("model name")?;
    Some(match (field("cpu family"), field("model")) {
        (Some(family), Some(model)) => format!("{name} (family {family}, model {model})"),
        _ => name,
    })
}

pub fn render(timings: &[Timing], replay: Option<Duration>) -> String {
    let ms = |d: Duration, steps: usize| d.as_secs_f64() * 1e3 / steps as f64;
    let mut out = format!(
        "{:<62} {:>5} {:>9} {:>8} {:>8} {:>10} {:>10} {:>7} {:>12}\n",
        "run",
        "steps",
        "process s",
        "wall s",
        "ms/step",
        "linearize",
        "curvature",
        "solve",
        "line search"
    );
    for t in timings {
        let process = t
            .process
            .map_or("-".to_string(), |p| format!("{:.3}", p.as_secs_f64()));
        out.push_str(&format!(
            "{:<62} {:>5} {:>9} {:>8.3} {:>8.2} {:>10.2} {:>10.2} {:>7.2} {:>12.2}\n",
            t.name,
            t.steps,
            process,
            t.wall.as_secs_f64(),
            ms(t.wall, t.steps),
            ms(t.linearize, t.steps),
            ms(t.curvature, t.steps),
            ms(t.solve, t.steps),
            ms(t.line_search, t.steps)
        ));
    }
    out.push_str(
        "(process: whole-process wall time of the command; linearize … line search: ms per step)\n",
    );
    out.push_str(&format!("measured on: {}\n", machine()));
    if let Some(d) = replay {
        out.push_str(&format!(
            "replay of the seed log, with the provenance search: {:.2} s\n",
            d.as_secs_f64()
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_processor_is_the_first_ones_name_family_and_model() {
        let cpuinfo = "processor\t: 0\nvendor_id\t: GenuineIntel\ncpu family\t: 6\n\
                       model\t\t: 167\nmodel name\t: Intel(R) Xeon(R) Processor\n\n\
                       processor\t: 1\ncpu family\t: 25\nmodel\t\t: 17\n\
                       model name\t: AMD EPYC\n";
        assert_eq!(
            processor_from_cpuinfo(cpuinfo).as_deref(),
            Some("Intel(R) Xeon(R) Processor (family 6, model 167)")
        );
        // Without family and model (some architectures): the name alone.
        assert_eq!(
            processor_from_cpuinfo("model name : Some CPU\n").as_deref(),
            Some("Some CPU")
        );
        assert_eq!(processor_from_cpuinfo("processor : 0\n"), None);
    }
}
