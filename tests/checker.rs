//! The checker on configurations with known answers: `compare` and `replay`.
use clap::Parser;
use kfac_check::compare::compare;
use kfac_check::debug_log::TrainCommand;
use kfac_check::lockstep::Follow;
use kfac_check::optimizer::NoObserver;
use kfac_check::replay::{Status, replay};
use kfac_check::train::train;

fn args(flags: &[&str]) -> kfac_check::cli::TrainArgs {
    TrainCommand::try_parse_from(flags).unwrap().args
}

/// With one boundary point the boundary KFAC is exact, so KFAC with the exact
/// interior Gramian has ENGD's per-layer curvature. The directions then agree
/// up to the solve's rounding amplified by the condition number: at damping
/// 1e-3 that is ≤ 1e-10 (at the log's 1e-8 it reaches 3e-7, κ ≈ 1e9).
#[test]
fn exact_interior_at_one_boundary_point_gives_engd_directions() {
    let a = args(&[
        "--optimizer=KFAC",
        "--N_dOmega=1",
        "--N_Omega=200",
        "--KFAC_USE_EXACT_INTERIOR_GRAMIAN",
        "--KFAC_damping=1e-3",
        "--KFAC_ema_factor=0",
        "--ENGD_damping=1e-3",
        "--ENGD_approximation=per_layer",
    ]);
    let c = compare(&a, Follow::Engd, 3, 1e-10).unwrap();
    for s in &c.steps {
        for l in &s.layers {
            assert!(
                l.direction_relative_difference <= 1e-10,
                "step {} layer {}: {:e}",
                s.step,
                l.layer,
                l.direction_relative_difference
            );
            assert!((l.direction_cosine - 1.0).abs() <= 1e-10);
        }
        assert_eq!(s.engd.step_size, s.kfac.step_size);
    }
    assert_eq!(c.first_departure, None);
}

#[test]
fn plain_kfac_boundary_error_is_zero_at_one_point_and_positive_beyond() {
    for (n_boundary, exact) in [("1", true), ("5", false)] {
        let a = args(&[
            "--optimizer=KFAC",
            "--KFAC_damping=1e-6",
            "--N_Omega=100",
            &format!("--N_dOmega={n_boundary}"),
        ]);
        let c = compare(&a, Follow::Kfac, 2, 1e-12).unwrap();
        for s in &c.steps {
            // The last layer (d_out = 1, g = 1 for every point) is exact at any N.
            let first = &s.layers[0];
            if exact {
                assert!(
                    first.kfac_error_boundary <= 1e-12,
                    "{:e}",
                    first.kfac_error_boundary
                );
            } else {
                assert!(
                    first.kfac_error_boundary > 1e-3,
                    "{:e}",
                    first.kfac_error_boundary
                );
            }
        }
        // The interior approximation is never exact: the verdict names it.
        let d = c.first_departure.unwrap();
        assert_eq!((d.step, d.layer, d.quantity), (0, 0, "kfac_error_interior"));
    }
}

const SMALL: &str = "--num_steps=6 --max_logs=4 --N_Omega=60";

/// Our output for a command (its `Step:` lines, Time kept).
fn output_of(command: &str) -> String {
    let flags: Vec<&str> = command.split_whitespace().collect();
    let config = args(&flags).to_config().unwrap();
    let mut out = Vec::new();
    train(&config, &mut out, &mut NoObserver).unwrap();
    String::from_utf8(out).unwrap()
}

fn write_log(blocks: &[(&str, Option<String>)]) -> tempfile::NamedTempFile {
    let mut text = String::from("# A synthetic debugging log\n\n");
    for (command, output) in blocks {
        text.push_str(&format!(
            "Running\n```bash\npython train.py \\\n    {}\n```\n",
            command
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" \\\n    ")
        ));
        if let Some(o) = output {
            text.push_str(&format!("gives\n```bash\n{o}```\n\n"));
        }
    }
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), text).unwrap();
    file
}

#[test]
fn replay_confirms_faithful_blocks_and_traces_the_others() {
    let engd = format!(
        "--optimizer=ENGD {SMALL} --ENGD_damping=1e-6 --ENGD_approximation=per_layer --N_dOmega=7"
    );
    let kfac = format!("--optimizer=KFAC {SMALL} --KFAC_damping=1e-6 --KFAC_ema_factor=0");
    let log = write_log(&[
        (&engd, Some(output_of(&engd))),
        // Documented with N_dOmega=7 (a value the log uses elsewhere), command without it.
        (&kfac, Some(output_of(&format!("{kfac} --N_dOmega=7")))),
        // Documented with an exact switch the command lacks.
        (
            &kfac,
            Some(output_of(&format!(
                "{kfac} --KFAC_USE_EXACT_INTERIOR_GRAMIAN"
            ))),
        ),
        (&kfac, None),
    ]);
    let report = replay(log.path(), true).unwrap();
    let status: Vec<&Status> = report.blocks.iter().map(|b| &b.status).collect();
    assert!(
        matches!(
            status[..],
            [
                Status::Reproduces,
                Status::DoesNotReproduce,
                Status::DoesNotReproduce,
                Status::NoDocumentedOutput
            ]
        ),
        "{status:?}"
    );

    let p = report.blocks[1].provenance.as_ref().unwrap();
    assert_eq!(p.problem_changes, ["--N_dOmega=7"]);
    assert_eq!(p.ranking[0].changes, ["--N_dOmega=7"]);
    assert!(p.best_reproduces);

    let p = report.blocks[2].provenance.as_ref().unwrap();
    assert!(p.problem_changes.is_empty());
    assert_eq!(p.ranking[0].changes, ["--KFAC_USE_EXACT_INTERIOR_GRAMIAN"]);
    assert!(p.best_reproduces);
}

#[test]
fn replay_rejects_bad_logs_naming_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, text: &str| {
        let p = dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        p
    };
    let no_commands = write("none.md", "# Notes\n\n```bash\nls -l\n```\n");
    let err = replay(&no_commands, false).unwrap_err().to_string();
    assert!(
        err.contains("none.md") && err.contains("no `python train.py"),
        "{err}"
    );

    let unknown = write(
        "unknown.md",
        "text\n\n```bash\npython train.py --optimizer=ENGD --learning_rate=3\n```\n",
    );
    let err = format!("{:#}", replay(&unknown, false).unwrap_err());
    assert!(
        err.contains("unknown.md:4") && err.contains("--learning_rate"),
        "{err}"
    );

    let malformed = write(
        "malformed.md",
        "```bash\npython train.py --optimizer=ENGD --num_steps=2\n```\n```bash\nStep: 000000/000002, Loss: 1.0, L2 Error: x, Interior: 1.0, Boundary: 0.0, Time: 0.1s\n```\n",
    );
    let err = format!("{:#}", replay(&malformed, false).unwrap_err());
    assert!(
        err.contains("malformed.md:5") && err.contains("L2 Error `x`"),
        "{err}"
    );
}
