//! Reading a markdown debugging log like the seed: fenced `python train.py …`
//! commands (with `\` continuations), each optionally followed by a fenced
//! output block of `Step: …` lines.

use crate::cli::TrainArgs;
use crate::line_search::NO_DECREASE_WARNING;
use crate::log_line::LogLine;
use anyhow::{Context, Result, anyhow, bail};
use clap::Parser;
use std::path::Path;

/// One documented run.
#[derive(Clone, Debug)]
pub struct DocumentedRun {
    /// 1-based line of the command's first line in the log.
    pub command_line: usize,
    /// The command as written, continuations joined.
    pub command: String,
    /// The flags after `train.py`.
    pub args: Vec<String>,
    /// The documented output, with each line's 1-based line number; `None`
    /// for a command without an output block.
    pub output: Option<Vec<(usize, LogLine)>>,
}

/// Parses `train.py`'s flags with our definitions.
#[derive(Parser, Debug)]
#[command(name = "train.py", no_binary_name = true)]
pub struct TrainCommand {
    #[command(flatten)]
    pub args: TrainArgs,
}

impl DocumentedRun {
    pub fn train_args(&self) -> Result<TrainArgs> {
        parse_train_args(&self.args)
    }
}

/// `train.py`'s flags (the tokens after `train.py`) parsed with our definitions.
pub fn parse_train_args(args: &[String]) -> Result<TrainArgs> {
    TrainCommand::try_parse_from(args)
        .map(|c| c.args)
        .map_err(|e| {
            let rendered = e.render().to_string();
            anyhow!("{}", rendered.trim_end().trim_start_matches("error: "))
        })
}

struct Fence {
    first_line: usize,
    lines: Vec<(usize, String)>,
}

fn fences(text: &str, path: &str) -> Result<Vec<Fence>> {
    let mut out = Vec::new();
    let mut open: Option<Fence> = None;
    for (i, line) in text.lines().enumerate() {
        let number = i + 1;
        if line.trim_start().starts_with("```") {
            match open.take() {
                Some(f) => out.push(f),
                None => {
                    open = Some(Fence {
                        first_line: number,
                        lines: Vec::new(),
                    })
                }
            }
        } else if let Some(f) = open.as_mut() {
            f.lines.push((number, line.to_string()));
        }
    }
    if let Some(f) = open {
        bail!("{path}:{}: code block is never closed", f.first_line);
    }
    Ok(out)
}

/// The tokens of a command block if it runs `train.py`.
fn train_command(fence: &Fence) -> Option<(usize, String, Vec<String>)> {
    let joined: String = fence
        .lines
        .iter()
        .map(|(_, l)| l.trim().trim_end_matches('\\').trim())
        .collect::<Vec<_>>()
        .join(" ");
    let tokens: Vec<String> = joined
        .split_whitespace()
        .map(|t| t.trim_matches(|c| c == '"' || c == '\'').to_string())
        .collect();
    let start = tokens.iter().position(|t| t.ends_with("train.py"))?;
    let launcher_ok = start == 0 || tokens[start - 1].starts_with("python");
    launcher_ok.then(|| {
        let first = fence.lines.first().map_or(fence.first_line, |(n, _)| *n);
        (
            first,
            joined.trim().to_string(),
            tokens[start + 1..].to_vec(),
        )
    })
}

/// Parse a log's text; `path` is only used in error messages.
pub fn parse(text: &str, path: &str) -> Result<Vec<DocumentedRun>> {
    let mut runs: Vec<DocumentedRun> = Vec::new();
    let mut awaiting_output = false;
    for fence in fences(text, path)? {
        if let Some((line, command, args)) = train_command(&fence) {
            runs.push(DocumentedRun {
                command_line: line,
                command,
                args,
                output: None,
            });
            awaiting_output = true;
            continue;
        }
        let has_step_line = fence
            .lines
            .iter()
            .any(|(_, l)| l.trim_start().starts_with("Step:"));
        if !(awaiting_output && has_step_line) {
            continue;
        }
        let mut lines = Vec::new();
        for (number, l) in &fence.lines {
            let l = l.trim();
            if l.is_empty() || l == NO_DECREASE_WARNING {
                continue;
            }
            let parsed = LogLine::parse(l)
                .with_context(|| format!("{path}:{number}: malformed output line"))?;
            lines.push((*number, parsed));
        }
        runs.last_mut()
            .expect("awaiting output implies a command")
            .output = Some(lines);
        awaiting_output = false;
    }
    if runs.is_empty() {
        bail!("{path}: no `python train.py …` command in a fenced code block");
    }
    Ok(runs)
}

pub fn read(path: &Path) -> Result<Vec<DocumentedRun>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    parse(&text, &path.display().to_string())
}

/// `args` with each `(flag, value)` set: an existing `--flag=…` or
/// `--flag …` is replaced, otherwise `--flag=value` is appended. A `None`
/// value means a switch: it is added once (`--flag`).
pub fn with_overrides(args: &[String], overrides: &[(&str, Option<&str>)]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut skip_next = false;
    for (i, a) in args.iter().enumerate() {
        if skip_next {
            skip_next = false;
            continue;
        }
        let name = a.split('=').next().unwrap_or(a).trim_start_matches("--");
        if overrides.iter().any(|(f, _)| *f == name) {
            // `--flag value` form: drop the value too.
            skip_next =
                !a.contains('=') && args.get(i + 1).is_some_and(|next| !next.starts_with("--"));
            continue;
        }
        out.push(a.clone());
    }
    for (flag, value) in overrides {
        out.push(match value {
            Some(v) => format!("--{flag}={v}"),
            None => format!("--{flag}"),
        });
    }
    out
}
