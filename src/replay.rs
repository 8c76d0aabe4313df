//! Replaying a markdown debugging log: run each documented command, compare
//! line by line with its documented output, and for a block that does not
//! reproduce, search nearby configurations for the one that produced it.
//!
//! The search has two stages. The step-0 losses depend only on the problem
//! (point sets and initial weights), so the problem flags (`--N_dOmega`,
//! `--N_Omega`, the seeds) are identified first from the step-0 line, at
//! the cost of one loss evaluation each. Then the optimizer flags (exact
//! switches, `--KFAC_ggn_type`, `--KFAC_error_scale`, EMA and damping values
//! found in the log), one or two changes at a time, each run only up to the
//! third documented step, ranked by matching significant digits.

use crate::cli::TrainArgs;
use crate::debug_log::{self, DocumentedRun, parse_train_args, with_overrides};
use crate::log_line::LogLine;
use crate::optimizer::NoObserver;
use crate::train::{TrainConfig, run_steps, train};
use crate::trajectory::{FieldComparison, compare, relative_error};
use anyhow::{Context, Result};
use rayon::prelude::*;
use std::collections::BTreeSet;
use std::path::Path;

/// How far a candidate is run in the search: up to this many documented lines.
const SEARCH_LINES: usize = 3;

/// Candidates whose mean matching digits differ by less than this are
/// indistinguishable by the documented numbers.
const TIE_DIGITS: f64 = 0.5;

#[derive(Clone, Debug, serde::Serialize)]
pub struct Candidate {
    /// Flags changed from the documented command (`--flag=value`, `--switch`, `no --switch`).
    pub changes: Vec<String>,
    /// Mean matching significant digits over the searched lines' fields.
    pub mean_digits: f64,
    /// Fewest matching digits of any searched field.
    pub min_digits: f64,
}

#[derive(Clone, Debug, serde::Serialize)]
pub struct Provenance {
    /// Problem flags whose step-0 losses match the documented step-0 line.
    pub problem_changes: Vec<String>,
    pub candidates_tried: usize,
    /// Best first.
    pub ranking: Vec<Candidate>,
    /// The best candidate's full run against the documented block.
    pub best_fields: Vec<FieldComparison>,
    pub best_reproduces: bool,
    pub implications: Vec<String>,
}

#[derive(Clone, Debug, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Reproduces,
    DoesNotReproduce,
    NoDocumentedOutput,
    Failed,
}

#[derive(Clone, Debug, serde::Serialize)]
pub struct BlockReport {
    pub command_line: usize,
    pub command: String,
    pub status: Status,
    pub error: Option<String>,
    pub fields: Vec<FieldComparison>,
    /// Our last logged line (the only result for a command without output).
    pub our_last_line: Option<LogLine>,
    pub provenance: Option<Provenance>,
}

#[derive(Clone, Debug, serde::Serialize)]
pub struct ReplayReport {
    pub log: String,
    pub blocks: Vec<BlockReport>,
}

fn config_of(args: &[String]) -> Result<TrainConfig> {
    parse_train_args(args)?.to_config()
}

/// Run a configuration up to (and including) the last documented step,
/// logging at the documented steps.
fn run_prefix(config: &TrainConfig, documented: &[LogLine]) -> Result<Vec<LogLine>> {
    let steps: Vec<usize> = documented.iter().map(|l| l.step).collect();
    let last = steps.last().map_or(0, |s| *s);
    run_steps(
        config,
        last + 1,
        &steps,
        &mut std::io::sink(),
        &mut NoObserver,
    )
}

fn flatten(comparisons: Vec<(usize, Option<Vec<FieldComparison>>)>) -> Vec<FieldComparison> {
    comparisons
        .into_iter()
        .flat_map(|(_, f)| f.unwrap_or_default())
        .collect()
}

fn score(fields: &[FieldComparison]) -> (f64, f64) {
    if fields.is_empty() {
        return (0.0, 0.0);
    }
    let mean = fields.iter().map(|f| f.matching_digits).sum::<f64>() / fields.len() as f64;
    let min = fields
        .iter()
        .map(|f| f.matching_digits)
        .fold(17.0, f64::min);
    (mean, min)
}

/// Values of `flag` anywhere in the log, plus `default`.
fn values_in_log(runs: &[DocumentedRun], flag: &str, default: &str) -> Vec<String> {
    let mut values: BTreeSet<String> = BTreeSet::new();
    values.insert(default.to_string());
    for run in runs {
        for a in &run.args {
            if let Some(v) = a.strip_prefix(&format!("--{flag}=")) {
                values.insert(v.to_string());
            }
        }
    }
    values.into_iter().collect()
}

/// One change to a command's flags.
#[derive(Clone, Debug)]
enum Change {
    Set(&'static str, String),
    Switch(&'static str, bool),
}

impl Change {
    fn describe(&self) -> String {
        match self {
            Change::Set(f, v) => format!("--{f}={v}"),
            Change::Switch(f, true) => format!("--{f}"),
            Change::Switch(f, false) => format!("without --{f}"),
        }
    }
}

fn apply(args: &[String], changes: &[Change]) -> Vec<String> {
    let mut out = args.to_vec();
    for c in changes {
        out = match c {
            Change::Set(f, v) => with_overrides(&out, &[(f, Some(v.as_str()))]),
            Change::Switch(f, true) => with_overrides(&out, &[(f, None)]),
            Change::Switch(f, false) => {
                out.into_iter().filter(|a| a != &format!("--{f}")).collect()
            }
        };
    }
    out
}

/// Changes of one flag that alter the command (values from the log).
fn single_changes(
    runs: &[DocumentedRun],
    args: &TrainArgs,
    flags: &[(&'static str, &'static str)],
) -> Vec<Change> {
    let mut changes = Vec::new();
    let current = |flag: &str| -> String {
        match flag {
            "N_dOmega" => args.n_domega.to_string(),
            "N_Omega" => args.n_omega.to_string(),
            "data_seed" => args.data_seed.to_string(),
            "model_seed" => args.model_seed.to_string(),
            "KFAC_ggn_type" => args.kfac_ggn_type.clone(),
            "KFAC_error_scale" => args.kfac_error_scale.clone(),
            "KFAC_ema_factor" => args.kfac_ema_factor.to_string(),
            "KFAC_damping" => args.kfac_damping.map(|d| d.to_string()).unwrap_or_default(),
            "ENGD_damping" => args.engd_damping.to_string(),
            "ENGD_ema_factor" => args.engd_ema_factor.to_string(),
            "ENGD_approximation" => args.engd_approximation.clone(),
            _ => String::new(),
        }
    };
    for &(flag, default) in flags {
        let options: Vec<String> = match flag {
            "KFAC_ggn_type" => crate::kronecker::GgnType::NAMES
                .iter()
                .map(|s| s.to_string())
                .collect(),
            "KFAC_error_scale" => crate::kronecker::ErrorScale::NAMES
                .iter()
                .map(|s| s.to_string())
                .collect(),
            "ENGD_approximation" => crate::gramian::Approximation::NAMES
                .iter()
                .map(|s| s.to_string())
                .collect(),
            _ => values_in_log(runs, flag, default),
        };
        let now = current(flag);
        for v in options {
            let same_number =
                matches!((v.parse::<f64>(), now.parse::<f64>()), (Ok(a), Ok(b)) if a == b);
            if v != now && !same_number {
                changes.push(Change::Set(flag, v));
            }
        }
    }
    changes
}

const PROBLEM_FLAGS: [(&str, &str); 4] = [
    ("N_dOmega", "120"),
    ("N_Omega", "900"),
    ("data_seed", "0"),
    ("model_seed", "1"),
];

/// Find the problem flags whose initial losses match the documented step 0.
fn search_problem(
    runs: &[DocumentedRun],
    run: &DocumentedRun,
    step0: &LogLine,
) -> Result<Option<Vec<Change>>> {
    let args = parse_train_args(&run.args)?;
    let matches = |changes: &[Change]| -> Result<bool> {
        let config = config_of(&apply(&run.args, changes))?;
        let (pinn, theta) = config.problem.build();
        let l = pinn.losses(&theta);
        Ok(
            format!("{:.10}", l.interior) == format!("{:.10}", step0.interior)
                && format!("{:.10}", l.boundary) == format!("{:.10}", step0.boundary)
                && relative_error(l.total(), step0.loss) <= 1e-12,
        )
    };
    if matches(&[])? {
        return Ok(Some(Vec::new()));
    }
    let singles = single_changes(runs, &args, &PROBLEM_FLAGS);
    for c in &singles {
        if matches(std::slice::from_ref(c))? {
            return Ok(Some(vec![c.clone()]));
        }
    }
    for (i, a) in singles.iter().enumerate() {
        for b in &singles[i + 1..] {
            if a.describe().split('=').next() != b.describe().split('=').next()
                && matches(&[a.clone(), b.clone()])?
            {
                return Ok(Some(vec![a.clone(), b.clone()]));
            }
        }
    }
    Ok(None)
}

fn optimizer_changes(runs: &[DocumentedRun], args: &TrainArgs) -> Vec<Change> {
    let mut changes = Vec::new();
    match args.optimizer.as_deref() {
        Some("KFAC") => {
            for (flag, on) in [
                (
                    "KFAC_USE_EXACT_INTERIOR_GRAMIAN",
                    args.kfac_use_exact_interior_gramian,
                ),
                (
                    "KFAC_USE_EXACT_BOUNDARY_GRAMIAN",
                    args.kfac_use_exact_boundary_gramian,
                ),
            ] {
                changes.push(Change::Switch(flag, !on));
            }
            changes.extend(single_changes(
                runs,
                args,
                &[
                    ("KFAC_ggn_type", "type-2"),
                    ("KFAC_error_scale", "inv_sqrt_n"),
                    ("KFAC_ema_factor", "0.95"),
                    ("KFAC_damping", "1e-8"),
                ],
            ));
        }
        _ => changes.extend(single_changes(
            runs,
            args,
            &[
                ("ENGD_approximation", "full"),
                ("ENGD_damping", "0"),
                ("ENGD_ema_factor", "0"),
            ],
        )),
    }
    changes
}

fn implications(run: &DocumentedRun, changes: &[String]) -> Vec<String> {
    let mut out = Vec::new();
    for c in changes {
        if c == "--N_dOmega=1" {
            out.push(
                "The block was produced with one boundary point. There the boundary KFAC factor is exact \
                 (B_∂ ⊗ A_∂ equals the boundary Gramian block) and 1/sqrt(N_dOmega) = 1, so the block cannot \
                 show the effect of KFAC's boundary approximation, and any change to a sqrt(batch_size) scaling \
                 of the boundary error leaves every digit unchanged. For the same reason \
                 --KFAC_USE_EXACT_BOUNDARY_GRAMIAN changes only rounding there."
                    .into(),
            );
        } else if let Some(v) = c.strip_prefix("--N_dOmega=") {
            out.push(format!(
                "The block was produced with --N_dOmega={v}, not the command's value."
            ));
        } else if c == "--KFAC_USE_EXACT_INTERIOR_GRAMIAN" {
            out.push(
                "The block used the exact interior Gramian: it says nothing about KFAC's interior approximation."
                    .into(),
            );
        } else if c == "--KFAC_USE_EXACT_BOUNDARY_GRAMIAN" {
            out.push(
                "The block used the exact boundary Gramian: it says nothing about KFAC's boundary approximation."
                    .into(),
            );
        } else {
            out.push(format!("The block was produced with {c}."));
        }
    }
    if !changes.is_empty() {
        out.push(format!(
            "This block is no evidence about `{}` as written: the log's claims about that command need a rerun.",
            run.command
        ));
    }
    out
}

fn provenance(
    runs: &[DocumentedRun],
    run: &DocumentedRun,
    documented: &[LogLine],
) -> Result<Option<Provenance>> {
    let Some(problem) = search_problem(runs, run, &documented[0])? else {
        return Ok(None);
    };
    let base_args = apply(&run.args, &problem);
    let parsed = parse_train_args(&base_args)?;
    let singles = optimizer_changes(runs, &parsed);
    let mut candidate_sets: Vec<Vec<Change>> = vec![Vec::new()];
    candidate_sets.extend(singles.iter().map(|c| vec![c.clone()]));
    for (i, a) in singles.iter().enumerate() {
        for b in &singles[i + 1..] {
            let flag = |c: &Change| match c {
                Change::Set(f, _) | Change::Switch(f, _) => *f,
            };
            if flag(a) != flag(b) {
                candidate_sets.push(vec![a.clone(), b.clone()]);
            }
        }
    }
    let prefix = &documented[..documented.len().min(SEARCH_LINES)];
    // Candidates are independent runs: in parallel, collected in order.
    let mut ranking: Vec<(Candidate, Vec<Change>)> = candidate_sets
        .par_iter()
        .filter_map(|changes| {
            let config = config_of(&apply(&base_args, changes)).ok()?;
            let ours = run_prefix(&config, prefix).ok()?;
            let (mean_digits, min_digits) = score(&flatten(compare(prefix, &ours)));
            let mut all: Vec<Change> = problem.clone();
            all.extend(changes.iter().cloned());
            Some((
                Candidate {
                    changes: all.iter().map(Change::describe).collect(),
                    mean_digits,
                    min_digits,
                },
                all,
            ))
        })
        .collect();
    ranking.sort_by(|a, b| b.0.mean_digits.total_cmp(&a.0.mean_digits));
    // Candidates within half a digit of the best are indistinguishable by the
    // log; the one with the fewest changes explains it most simply.
    if let Some(top) = ranking.first().map(|r| r.0.mean_digits) {
        let simplest = (0..ranking.len())
            .filter(|&i| ranking[i].0.mean_digits >= top - TIE_DIGITS)
            .min_by_key(|&i| ranking[i].1.len())
            .unwrap_or(0);
        let best = ranking.remove(simplest);
        ranking.insert(0, best);
    }
    let candidates_tried = ranking.len();
    let (best, best_changes) = ranking
        .first()
        .cloned()
        .expect("the unchanged candidate always runs");
    let config = config_of(&apply(&run.args, &best_changes))?;
    let ours = train(&config, &mut std::io::sink(), &mut NoObserver)?;
    let best_fields = flatten(compare(documented, &ours));
    let best_reproduces = !best_fields.is_empty() && best_fields.iter().all(|f| f.within_floor);
    Ok(Some(Provenance {
        problem_changes: problem.iter().map(Change::describe).collect(),
        candidates_tried,
        implications: implications(run, &best.changes),
        ranking: ranking.into_iter().take(5).map(|(c, _)| c).collect(),
        best_fields,
        best_reproduces,
    }))
}

fn replay_block(runs: &[DocumentedRun], run: &DocumentedRun, search: bool) -> BlockReport {
    let mut report = BlockReport {
        command_line: run.command_line,
        command: run.command.clone(),
        status: Status::Failed,
        error: None,
        fields: Vec::new(),
        our_last_line: None,
        provenance: None,
    };
    let result = (|| -> Result<()> {
        let config = config_of(&run.args)?;
        let ours = train(&config, &mut std::io::sink(), &mut NoObserver)?;
        report.our_last_line = ours.last().cloned();
        let Some(output) = &run.output else {
            report.status = Status::NoDocumentedOutput;
            return Ok(());
        };
        let documented: Vec<LogLine> = output.iter().map(|(_, l)| l.clone()).collect();
        let comparison = compare(&documented, &ours);
        let complete = comparison.iter().all(|(_, f)| f.is_some());
        report.fields = flatten(comparison);
        if complete && report.fields.iter().all(|f| f.within_floor) {
            report.status = Status::Reproduces;
        } else {
            report.status = Status::DoesNotReproduce;
            if search && !documented.is_empty() {
                report.provenance = provenance(runs, run, &documented)?;
                if let (Some(p), Some(ours), Some(doc)) = (
                    report.provenance.as_mut(),
                    &report.our_last_line,
                    documented.last(),
                ) {
                    p.implications.push(format!(
                        "Run as written here, the command reaches Loss {} and L2 Error {} at step {} \
                         (the block documents Loss {} and L2 Error {}).",
                        crate::log_line::python_repr(ours.loss),
                        crate::log_line::python_repr(ours.l2_error),
                        ours.step,
                        crate::log_line::python_repr(doc.loss),
                        crate::log_line::python_repr(doc.l2_error),
                    ));
                }
            }
        }
        Ok(())
    })();
    if let Err(e) = result {
        report.status = Status::Failed;
        report.error = Some(format!("{e:#}"));
    }
    report
}

/// Replay every command of the log at `path`. Commands that fail to parse
/// or run are reported as failed blocks; an unreadable or command-free log,
/// or a malformed output line, is an error.
pub fn replay(path: &Path, search: bool) -> Result<ReplayReport> {
    let runs = debug_log::read(path)?;
    for run in &runs {
        config_of(&run.args)
            .map_err(|e| anyhow::anyhow!("{}:{}: {e:#}", path.display(), run.command_line))?;
    }
    let blocks = runs
        .par_iter()
        .map(|run| replay_block(&runs, run, search))
        .collect();
    Ok(ReplayReport {
        log: path.display().to_string(),
        blocks,
    })
}

fn digits_table(fields: &[FieldComparison], indent: &str) -> String {
    let mut out = format!(
        "{indent}{:>6}  {:>8}  {:>8}  {:>8}  {:>8}   (matching significant digits; * = outside the floor)\n",
        "step", "Loss", "L2 Error", "Interior", "Boundary"
    );
    let steps: BTreeSet<usize> = fields.iter().map(|f| f.step).collect();
    for step in steps {
        out.push_str(&format!("{indent}{step:>6}"));
        for name in crate::trajectory::FIELDS {
            match fields.iter().find(|f| f.step == step && f.field == name) {
                Some(f) => {
                    let mark = if f.within_floor { ' ' } else { '*' };
                    out.push_str(&format!("  {:>7.1}{mark}", f.matching_digits));
                }
                None => out.push_str("         -"),
            }
        }
        out.push('\n');
    }
    out
}

fn first_failure(fields: &[FieldComparison]) -> Option<&FieldComparison> {
    fields.iter().find(|f| !f.within_floor)
}

/// The report as text, for a reviewer.
pub fn render(report: &ReplayReport) -> String {
    let with_output = report
        .blocks
        .iter()
        .filter(|b| !matches!(b.status, Status::NoDocumentedOutput))
        .count();
    let mut out = format!(
        "Replay of {}: {} command(s), {} with documented output\n",
        report.log,
        report.blocks.len(),
        with_output
    );
    for (i, b) in report.blocks.iter().enumerate() {
        out.push_str(&format!(
            "\n[{}] line {}: {}\n",
            i + 1,
            b.command_line,
            b.command
        ));
        match b.status {
            Status::Reproduces => {
                out.push_str("    REPRODUCES: every documented field is within its floor.\n");
                out.push_str(&digits_table(&b.fields, "    "));
            }
            Status::NoDocumentedOutput => {
                out.push_str("    no documented output; our run:\n");
                if let Some(l) = &b.our_last_line {
                    out.push_str(&format!(
                        "    {}\n",
                        crate::golden::redact_time(&l.format())
                    ));
                }
            }
            Status::Failed => {
                out.push_str(&format!(
                    "    FAILED: {}\n",
                    b.error.as_deref().unwrap_or("unknown error")
                ));
            }
            Status::DoesNotReproduce => {
                out.push_str("    DOES NOT REPRODUCE from its command.\n");
                if let Some(f) = first_failure(&b.fields) {
                    out.push_str(&format!(
                        "    first difference: step {} {}: documented {}, ours {} ({:.1} digits, floor {:.0e})\n",
                        f.step, f.field, f.documented, f.ours, f.matching_digits, f.floor
                    ));
                }
                out.push_str(&digits_table(&b.fields, "    "));
                match &b.provenance {
                    None => out.push_str(
                        "    provenance: no nearby problem set-up matches the documented step 0.\n",
                    ),
                    Some(p) => {
                        if !p.problem_changes.is_empty() {
                            out.push_str(&format!(
                                "    the documented step-0 losses are those of: {}\n",
                                p.problem_changes.join(" ")
                            ));
                        }
                        out.push_str(&format!(
                            "    provenance search: {} configurations, ranked by mean matching digits over the first {} documented lines:\n",
                            p.candidates_tried, SEARCH_LINES
                        ));
                        for (k, c) in p.ranking.iter().enumerate() {
                            let changes = if c.changes.is_empty() {
                                "(the command as written)".to_string()
                            } else {
                                c.changes.join(" ")
                            };
                            out.push_str(&format!(
                                "      {}. {:<70} mean {:>4.1}, min {:>4.1} digits\n",
                                k + 1,
                                changes,
                                c.mean_digits,
                                c.min_digits
                            ));
                        }
                        let ties = p
                            .ranking
                            .iter()
                            .skip(1)
                            .filter(|c| {
                                (p.ranking[0].mean_digits - c.mean_digits).abs() < TIE_DIGITS
                            })
                            .count();
                        if ties > 0 {
                            out.push_str(&format!(
                                "      ({ties} other configuration(s) within {TIE_DIGITS} digits of the first: the log cannot tell them apart; the first has the fewest changes)\n"
                            ));
                        }
                        let verdict = if p.best_reproduces {
                            "reproduces the whole block within the floors"
                        } else {
                            "comes closest but does not reproduce the whole block"
                        };
                        out.push_str(&format!("    the best configuration {verdict}:\n"));
                        out.push_str(&digits_table(&p.best_fields, "    "));
                        out.push_str("    what this implies:\n");
                        for line in &p.implications {
                            out.push_str(&format!("      - {line}\n"));
                        }
                    }
                }
            }
        }
    }
    out
}

fn panels_of(series: Vec<(String, bool, usize, &[FieldComparison])>) -> Vec<crate::plot::Panel> {
    ["Loss", "L2 Error"]
        .iter()
        .map(|field| crate::plot::Panel {
            y_label: field.to_string(),
            series: series
                .iter()
                .map(|(label, documented, color, fields)| crate::plot::Series {
                    label: label.clone(),
                    documented: *documented,
                    color: *color,
                    points: fields
                        .iter()
                        .filter(|f| f.field == *field)
                        .map(|f| {
                            (
                                f.step as f64,
                                if *documented { f.documented } else { f.ours },
                            )
                        })
                        .collect(),
                })
                .collect(),
        })
        .collect()
}

/// Pictures of a replay in `dir`: per block with output, documented against
/// ours (and the best configuration found), and an overview of every
/// documented trajectory side by side (ENGD and KFAC), each as PNG and SVG.
pub fn plot(report: &ReplayReport, dir: &Path) -> Result<Vec<std::path::PathBuf>> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let mut written = Vec::new();
    let mut overview = Vec::new();
    for (i, b) in report.blocks.iter().enumerate() {
        if b.fields.is_empty() {
            continue;
        }
        let mut series = vec![
            ("documented".to_string(), true, 0, b.fields.as_slice()),
            (
                "ours, the command as written".to_string(),
                false,
                0,
                b.fields.as_slice(),
            ),
        ];
        if let Some(p) = &b.provenance {
            series.push((
                format!("ours, {}", p.ranking[0].changes.join(" ")),
                false,
                1,
                p.best_fields.as_slice(),
            ));
        }
        let optimizer = if b.command.contains("--optimizer=ENGD") {
            "ENGD"
        } else {
            "KFAC"
        };
        overview.push((
            format!("[{}] {optimizer}, line {}", i + 1, b.command_line),
            true,
            i,
            b.fields.as_slice(),
        ));
        for ext in ["png", "svg"] {
            let path = dir.join(format!("block{}.{ext}", i + 1));
            crate::plot::trajectories(
                &path,
                &format!("[{}] line {}: documented vs ours", i + 1, b.command_line),
                &panels_of(series.clone()),
            )?;
            written.push(path);
        }
    }
    for ext in ["png", "svg"] {
        let path = dir.join(format!("overview.{ext}"));
        crate::plot::trajectories(
            &path,
            "documented trajectories",
            &panels_of(overview.clone()),
        )?;
        written.push(path);
    }
    Ok(written)
}
