//! The binary from the outside: dumps, and bad input (clear message, exit 2,
//! no partial output file).
mod common;
use common::*;
use std::path::Path;
use std::process::{Command, Output};

fn kfac_check(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kfac-check"))
        .args(args)
        .output()
        .expect("binary runs")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Fails with exit code 2 and a message containing `needle`.
fn assert_rejected(args: &[&str], needle: &str) {
    let o = kfac_check(args);
    assert_eq!(o.status.code(), Some(2), "{args:?}: {}", stderr(&o));
    assert!(
        stderr(&o).contains(needle),
        "{args:?}: expected `{needle}` in: {}",
        stderr(&o)
    );
}

const TRAIN_SHORT: [&str; 4] = ["train", "--optimizer=ENGD", "--num_steps=2", "--max_logs=2"];

#[test]
fn bad_training_flags_are_named() {
    fn with(extra: &str) -> Vec<&str> {
        let mut v = TRAIN_SHORT.to_vec();
        v.push(extra);
        v
    }
    assert_rejected(&with("--model=mlp-relu-64"), "--model");
    assert_rejected(&with("--equation=heat"), "--equation");
    assert_rejected(&with("--N_Omega=0"), "--N_Omega");
    assert_rejected(&with("--N_dOmega=0"), "--N_dOmega");
    assert_rejected(&with("--dim_Omega=0"), "--dim_Omega");
    assert_rejected(&with("--ENGD_damping=-1"), "--ENGD_damping");
    assert_rejected(&with("--ENGD_ema_factor=1"), "--ENGD_ema_factor");
    assert_rejected(&with("--ENGD_lr=0"), "--ENGD_lr");
    assert_rejected(&with("--ENGD_approximation=block"), "--ENGD_approximation");
    assert_rejected(&with("--N_Omega=many"), "N_Omega");
    assert_rejected(&with("--N_Omgea=3"), "N_Omega"); // clap suggests the right spelling
    assert_rejected(&["train", "--num_steps=2"], "--optimizer");
    assert_rejected(&["train", "--optimizer=SGD"], "--optimizer");
    assert_rejected(
        &["train", "--optimizer=KFAC", "--num_steps=2"],
        "--KFAC_damping",
    );
    assert_rejected(
        &[
            "train",
            "--optimizer=KFAC",
            "--KFAC_damping=1e-8",
            "--KFAC_ggn_type=exact",
        ],
        "--KFAC_ggn_type",
    );
    assert_rejected(
        &[
            "train",
            "--optimizer=KFAC",
            "--KFAC_damping=1e-8",
            "--KFAC_ema_factor=-0.1",
        ],
        "--KFAC_ema_factor",
    );
}

#[test]
fn unwritable_dump_path_fails_before_any_file_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no/such/dir/d.json");
    let o = kfac_check(&[
        "dump",
        "--step=0",
        "--optimizer=ENGD",
        "--out",
        missing.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("cannot write"), "{}", stderr(&o));
    assert!(!missing.exists());

    // A bad flag leaves an existing file as it was.
    let out = dir.path().join("d.json");
    std::fs::write(&out, "previous").unwrap();
    let o = kfac_check(&[
        "dump",
        "--step=0",
        "--optimizer=ENGD",
        "--N_Omega=0",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert_eq!(std::fs::read_to_string(&out).unwrap(), "previous");
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        1,
        "no temporary file left behind"
    );
}

fn layer_vector(v: &serde_json::Value, key: &str) -> Vec<f64> {
    v["layers"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|l| {
            let mut x = floats(&l[key]["weight"]);
            x.extend(floats(&l[key]["bias"]));
            x
        })
        .collect()
}

/// `dump --step 0` at the oracle's set-up: what the reference system computed.
#[test]
fn step_zero_dump_matches_the_oracle() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("step0.json");
    let o = kfac_check(&[
        "dump",
        "--step",
        "0",
        "--optimizer=ENGD",
        "--N_dOmega=1",
        "--ENGD_damping=1e-8",
        "--ENGD_approximation=per_layer",
        "--KFAC_damping=1e-8",
        "--KFAC_ema_factor=0",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let dump: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    let oracle = oracle();
    assert_eq!(
        dump["loss"]["interior"].as_f64(),
        oracle["loss_interior"].as_f64()
    );
    let mut grad = Vec::new();
    for layer in oracle["grad_autograd_path"].as_array().unwrap() {
        grad.extend(floats(&layer["weight_row_major"]));
        grad.extend(floats(&layer["bias"]));
    }
    assert!(rel_err(&layer_vector(&dump, "grad"), &grad) < 1e-13);
    for (l, layer) in dump["layers"].as_array().unwrap().iter().enumerate() {
        for term in ["interior", "boundary"] {
            let ours = floats(&layer["gramian"][term]);
            assert!(
                rel_err(
                    &ours,
                    &floats(&oracle[format!("{term}_gramian_per_layer")][l])
                ) < 1e-13
            );
            for f in ["A", "B"] {
                let ours = floats(&layer["kfac"][term][f]);
                assert!(rel_err(&ours, &floats(&oracle[format!("kfac_{term}")][l][f])) < 1e-13);
            }
        }
    }
    // Directions: the ENGD solve is ill-conditioned (κ ≈ 1.4e9 for layer 2),
    // so rounding differences of 1e-16 in the Gramian show at ~1e-6.
    let engd: Vec<f64> = dump["layers"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|l| {
            let mut x = floats(&l["direction"]["engd"]["weight"]);
            x.extend(floats(&l["direction"]["engd"]["bias"]));
            x
        })
        .collect();
    let err = rel_err(&engd, &floats(&oracle["engd"]["directions"]));
    assert!(err < 1e-5, "ENGD direction: {err:e}");
    assert_eq!(
        dump["step_size"]["engd"].as_f64(),
        oracle["engd"]["step_size"].as_f64()
    );
    assert_eq!(
        dump["step_size"]["kfac"].as_f64(),
        oracle["kfac_first_step"]["kfac"]["step_size"].as_f64()
    );
    let kfac: Vec<f64> = dump["layers"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|l| {
            let mut x = floats(&l["direction"]["kfac"]["weight"]);
            x.extend(floats(&l["direction"]["kfac"]["bias"]));
            x
        })
        .collect();
    let err = rel_err(
        &kfac,
        &floats(&oracle["kfac_first_step"]["kfac"]["directions"]),
    );
    assert!(err < 1e-5, "KFAC direction: {err:e}");
}

#[test]
fn a_later_step_can_be_dumped() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("step3.json");
    let o = kfac_check(&[
        "dump",
        "--step=3",
        "--optimizer=KFAC",
        "--KFAC_damping=1e-6",
        "--N_Omega=50",
        "--N_dOmega=10",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let dump: kfac_check::dump::Dump =
        serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    assert_eq!(dump.step, 3);
    assert_eq!(dump.layers.len(), 2);
    assert_eq!(dump.layers[0].gramian.interior.len(), 192);
    assert!(Path::new(&out).exists());
}

/// Same command, same bits: twice, and with one, two or four threads (Time
/// aside). KFAC and ENGD cover every parallel split: line-search candidates,
/// Gramian and factor halves, Jacobian and linearisation halves, KFAC layers.
#[test]
fn runs_are_deterministic_across_repeats_and_thread_counts() {
    for optimizer in [
        &["--optimizer=KFAC", "--KFAC_damping=1e-6"][..],
        &[
            "--optimizer=ENGD",
            "--ENGD_damping=1e-6",
            "--ENGD_approximation=per_layer",
        ][..],
    ] {
        let run = |threads: &str| {
            let o = Command::new(env!("CARGO_BIN_EXE_kfac-check"))
                .env("RAYON_NUM_THREADS", threads)
                .arg("train")
                .args(optimizer)
                .args([
                    "--num_steps=12",
                    "--max_logs=12",
                    "--N_Omega=150",
                    "--N_dOmega=20",
                ])
                .output()
                .unwrap();
            assert!(o.status.success());
            kfac_check::golden::redact_time(&String::from_utf8(o.stdout).unwrap())
        };
        let one = run("1");
        assert_eq!(
            one.lines().count(),
            kfac_check::log_line::logged_steps(12, 12).len()
        );
        assert_eq!(one, run("1"), "{optimizer:?}");
        assert_eq!(one, run("2"), "{optimizer:?}");
        assert_eq!(one, run("4"), "{optimizer:?}");
    }
}

#[test]
fn zero_steps_and_unreadable_paths_are_rejected() {
    assert_rejected(
        &["train", "--optimizer=ENGD", "--num_steps=0"],
        "--num_steps",
    );
    assert_rejected(&["train", "--optimizer=ENGD", "--max_logs=0"], "--max_logs");
    assert_rejected(&["compare", "--optimizer=ENGD", "--steps=0"], "--steps");
    assert_rejected(
        &["replay", "/no/such/log.md"],
        "cannot read /no/such/log.md",
    );
    assert_rejected(
        &["diff", "/no/such/a.json", "/no/such/b.json"],
        "cannot read /no/such/a.json",
    );
}

/// `--npz` writes every matrix of the dump, readable as numpy arrays, equal to the JSON.
#[test]
fn npz_export_matches_the_json_dump() {
    let dir = tempfile::tempdir().unwrap();
    let (json, npz) = (dir.path().join("d.json"), dir.path().join("d.npz"));
    let o = kfac_check(&[
        "dump",
        "--step=1",
        "--optimizer=KFAC",
        "--KFAC_damping=1e-6",
        "--N_Omega=40",
        "--N_dOmega=4",
        "--out",
        json.to_str().unwrap(),
        "--npz",
        npz.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let dump: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let mut archive = npyz::npz::NpzArchive::open(&npz).unwrap();
    let mut read = |name: &str| {
        let array = archive
            .by_name(name)
            .unwrap()
            .unwrap_or_else(|| panic!("{name} missing"));
        (array.shape().to_vec(), array.into_vec::<f64>().unwrap())
    };
    let (shape, data) = read("layer0.gramian.interior");
    assert_eq!(shape, [192, 192]);
    assert_eq!(data, floats(&dump["layers"][0]["gramian"]["interior"]));
    let (shape, data) = read("layer1.kfac.boundary.A");
    assert_eq!(shape, [65, 65]);
    assert_eq!(data, floats(&dump["layers"][1]["kfac"]["boundary"]["A"]));
    let (shape, data) = read("layer0.grad.bias");
    assert_eq!(shape, [64]);
    assert_eq!(data, floats(&dump["layers"][0]["grad"]["bias"]));
    assert_eq!(
        read("loss").1,
        [
            dump["loss"]["interior"].as_f64().unwrap(),
            dump["loss"]["boundary"].as_f64().unwrap()
        ]
    );
}

#[test]
fn a_malformed_log_line_exits_2_naming_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("bad.md");
    std::fs::write(
        &log,
        "```bash\npython train.py --optimizer=ENGD --num_steps=2\n```\n```bash\nStep: 000000/000002, Loss: 1.0, L2 Error: 1.0, Interior: one, Boundary: 0.0, Time: 0.1s\n```\n",
    )
    .unwrap();
    assert_rejected(
        &["replay", log.to_str().unwrap()],
        "bad.md:5: malformed output line: Interior `one` is not a number",
    );
}

/// `bench` times every documented command as a whole process and splits each
/// step into its four phases, which add up to no more than the step's wall
/// time, and says which processor and thread count it measured on.
#[test]
fn bench_reports_process_times_and_a_phase_split() {
    let o = kfac_check(&["bench", "--repeats", "1"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let table = String::from_utf8(o.stdout).unwrap();
    for name in kfac_check::bench::SCENARIOS.iter().map(|s| s.name) {
        let row = table
            .lines()
            .find(|l| l.starts_with(name))
            .unwrap_or_else(|| panic!("no row for {name} in\n{table}"));
        let numbers: Vec<&str> = row[name.len()..].split_whitespace().collect();
        let [steps, process, _wall, per_step, phases @ ..] = &numbers[..] else {
            panic!("row {row}");
        };
        let per_step: f64 = per_step.parse().unwrap();
        let phases: f64 = phases.iter().map(|p| p.parse::<f64>().unwrap()).sum();
        // The true phases add up to at most the true time per step; each of
        // the five printed numbers is within half a unit of its last digit
        // (0.005 ms) of its true value. (Exact only up to that rounding: a run
        // printed 2.80 ms per step with phases printed as adding to 2.81.)
        let rounding = 5.0 * 0.005;
        assert!(phases <= per_step + rounding + 1e-9, "{row}");
        // Only the 100-step documented commands are run as whole processes.
        assert_eq!(*steps == "100", process.parse::<f64>().is_ok(), "{row}");
    }
    // Timings are only comparable with the processor named.
    assert!(
        table
            .lines()
            .any(|l| l.starts_with("measured on: ") && l.ends_with(" threads")),
        "{table}"
    );
}
