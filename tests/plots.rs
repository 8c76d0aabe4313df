//! Pictures are written whole, as PNG and SVG, with axes and legends.
use kfac_check::plot::{Panel, Series, heatmaps, trajectories};

fn panels() -> Vec<Panel> {
    ["Loss", "L2 Error"]
        .iter()
        .map(|name| Panel {
            y_label: name.to_string(),
            series: vec![
                Series {
                    label: "documented".into(),
                    documented: true,
                    color: 0,
                    points: vec![(0.0, 48.6), (1.0, 28.6), (3.0, 26.9), (98.0, 4.7e-9)],
                },
                Series {
                    label: "ours".into(),
                    documented: false,
                    color: 0,
                    points: vec![(0.0, 48.6), (1.0, 28.6), (3.0, 26.9), (98.0, 4.6e-9)],
                },
            ],
        })
        .collect()
}

#[test]
fn trajectories_are_written_as_png_and_svg() {
    let dir = tempfile::tempdir().unwrap();
    let png = dir.path().join("t.png");
    trajectories(&png, "a run", &panels()).unwrap();
    let bytes = std::fs::read(&png).unwrap();
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n");
    assert!(bytes.len() > 10_000, "a picture, not an empty frame");

    let svg = dir.path().join("t.svg");
    trajectories(&svg, "a run", &panels()).unwrap();
    let text = std::fs::read_to_string(&svg).unwrap();
    for needle in ["<svg", "documented", "ours", "L2 Error", "step"] {
        assert!(text.contains(needle), "SVG lacks {needle}");
    }
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        2,
        "no temporary files left"
    );
}

#[test]
fn heatmaps_and_bad_extensions() {
    let dir = tempfile::tempdir().unwrap();
    let m = faer::Mat::from_fn(6, 6, |i, j| (i as f64) - (j as f64));
    let maps = [
        ("exact".to_string(), m.clone()),
        ("approx".to_string(), m.clone() * faer::Scale(0.5)),
    ];
    let svg = dir.path().join("h.svg");
    heatmaps(&svg, "layer 0", &maps).unwrap();
    assert!(std::fs::read_to_string(&svg).unwrap().contains("approx"));
    let err = heatmaps(&dir.path().join("h.jpg"), "layer 0", &maps)
        .unwrap_err()
        .to_string();
    assert!(err.contains(".png or .svg"), "{err}");
    assert!(!dir.path().join("h.jpg").exists());
}
