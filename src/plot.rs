//! Pictures: trajectories (Loss and L2 error against step, log scale,
//! documented against ours) and heatmaps of a layer's exact Gramian block next
//! to its Kronecker approximation and their difference, as PNG or SVG. Text
//! is laid out (and, in PNG, drawn) with DejaVu Sans (Debian's
//! `fonts-dejavu-core`), or the TTF named by `KFAC_CHECK_FONT`.

use anyhow::{Result, anyhow, bail};
use faer::Mat;
use plotters::coord::Shift;
use plotters::prelude::*;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

const FONT_PATHS: [&str; 2] = [
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
];

/// Register a font for `sans-serif` once.
fn ensure_font() -> Result<()> {
    static FONT: OnceLock<Result<(), String>> = OnceLock::new();
    FONT.get_or_init(|| {
        let candidates: Vec<PathBuf> = std::env::var_os("KFAC_CHECK_FONT")
            .map(PathBuf::from)
            .into_iter()
            .chain(FONT_PATHS.iter().map(PathBuf::from))
            .collect();
        let path = candidates.iter().find(|p| p.exists()).ok_or_else(|| {
            format!("no font for the pictures' text: install fonts-dejavu-core or set KFAC_CHECK_FONT to a .ttf; looked in {candidates:?}")
        })?;
        let bytes: &'static [u8] = Box::leak(std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?.into_boxed_slice());
        plotters::style::register_font("sans-serif", FontStyle::Normal, bytes)
            .map_err(|_| format!("{}: not a usable TrueType font", path.display()))
    })
    .clone()
    .map_err(|e| anyhow!(e))
}

/// One line of a trajectory chart.
pub struct Series {
    pub label: String,
    pub points: Vec<(f64, f64)>,
    /// Markers only for documented values, a line for ours.
    pub documented: bool,
    /// Series of the same run share a colour.
    pub color: usize,
}

/// One panel: a y-axis label and its series.
pub struct Panel {
    pub y_label: String,
    pub series: Vec<Series>,
}

fn palette(i: usize) -> RGBColor {
    [BLUE, RED, GREEN, MAGENTA, CYAN, BLACK][i % 6]
}

fn draw_panel<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    title: &str,
    panel: &Panel,
) -> Result<()>
where
    DB::ErrorType: 'static,
{
    let values: Vec<f64> = panel
        .series
        .iter()
        .flat_map(|s| s.points.iter().map(|p| p.1))
        .filter(|v| *v > 0.0 && v.is_finite())
        .collect();
    if values.is_empty() {
        bail!("{title}: nothing positive to plot on a log scale");
    }
    let (lo, hi) = values.iter().fold((f64::INFINITY, 0.0f64), |(lo, hi), v| {
        (lo.min(*v), hi.max(*v))
    });
    let max_step = panel
        .series
        .iter()
        .flat_map(|s| s.points.iter().map(|p| p.0))
        .fold(1.0, f64::max);
    let mut chart = ChartBuilder::on(area)
        .caption(title, ("sans-serif", 18))
        .margin(10)
        .x_label_area_size(35)
        .y_label_area_size(70)
        .build_cartesian_2d(0.0..max_step, (lo / 2.0..hi * 2.0).log_scale())
        .map_err(|e| anyhow!("{e}"))?;
    chart
        .configure_mesh()
        .x_desc("step")
        .y_desc(panel.y_label.as_str())
        .y_labels(8)
        .y_label_formatter(&|v| format!("{v:.0e}"))
        .draw()
        .map_err(|e| anyhow!("{e}"))?;
    for s in &panel.series {
        let color = palette(s.color);
        let points: Vec<(f64, f64)> = s
            .points
            .iter()
            .copied()
            .filter(|p| p.1 > 0.0 && p.1.is_finite())
            .collect();
        if s.documented {
            // Shrinking markers keep coinciding trajectories visible.
            let radius = 8u32.saturating_sub(2 * s.color as u32).max(2);
            chart
                .draw_series(
                    points
                        .iter()
                        .map(|p| Circle::new(*p, radius, color.stroke_width(2))),
                )
                .map_err(|e| anyhow!("{e}"))?
                .label(s.label.as_str())
                .legend(move |(x, y)| Circle::new((x + 10, y), radius, color.stroke_width(2)));
        } else {
            chart
                .draw_series(LineSeries::new(points, color.stroke_width(2)))
                .map_err(|e| anyhow!("{e}"))?
                .label(s.label.as_str())
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
                });
        }
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .label_font(("sans-serif", 13))
        .draw()
        .map_err(|e| anyhow!("{e}"))?;
    Ok(())
}

/// A white picture with `title` on top; the area below it.
fn white_and_titled<DB: DrawingBackend>(
    root: DrawingArea<DB, Shift>,
    title: &str,
) -> Result<DrawingArea<DB, Shift>>
where
    DB::ErrorType: 'static,
{
    root.fill(&WHITE).map_err(|e| anyhow!("{e}"))?;
    root.titled(title, ("sans-serif", 20))
        .map_err(|e| anyhow!("{e}"))
}

fn draw_panels<DB: DrawingBackend>(
    root: DrawingArea<DB, Shift>,
    title: &str,
    panels: &[Panel],
) -> Result<()>
where
    DB::ErrorType: 'static,
{
    let root = white_and_titled(root, title)?;
    for (area, panel) in root.split_evenly((1, panels.len())).iter().zip(panels) {
        draw_panel(area, &panel.y_label, panel)?;
    }
    root.present().map_err(|e| anyhow!("{e}"))?;
    Ok(())
}

/// Render to a temporary file beside `path` (by its extension, `.png` or
/// `.svg`), then rename: no half-drawn picture is ever left behind.
fn render_to(path: &Path, draw: impl Fn(&Path, bool) -> Result<()>) -> Result<()> {
    let png = match path.extension().and_then(|e| e.to_str()) {
        Some("png") => true,
        Some("svg") => false,
        _ => bail!(
            "{}: the picture's extension must be .png or .svg",
            path.display()
        ),
    };
    // Both backends measure text with the registered font to lay out labels.
    ensure_font()?;
    crate::output_file::via_temporary_file(path, |tmp| draw(tmp.path(), png))
}

/// `draw(root, args…)` on the backend the path's extension names (PNG or
/// SVG), via `render_to`'s temporary file.
macro_rules! render {
    ($path:expr, $size:expr, $draw:ident($($arg:expr),*)) => {
        render_to($path, |tmp, png| {
            if png {
                $draw(BitMapBackend::new(tmp, $size).into_drawing_area(), $($arg),*)
            } else {
                $draw(SVGBackend::new(tmp, $size).into_drawing_area(), $($arg),*)
            }
        })
    };
}

/// Loss and L2 error (or any panels) side by side, log scale.
pub fn trajectories(path: &Path, title: &str, panels: &[Panel]) -> Result<()> {
    render!(
        path,
        (600 * panels.len() as u32, 450),
        draw_panels(title, panels)
    )
}

/// A diverging colour: blue (negative) – white – red (positive), `t ∈ [−1, 1]`.
fn diverging(t: f64) -> RGBColor {
    let t = t.clamp(-1.0, 1.0);
    let fade = |c: f64| (255.0 * (1.0 - c.abs())) as u8;
    if t >= 0.0 {
        RGBColor(255, fade(t), fade(t))
    } else {
        RGBColor(fade(t), fade(t), 255)
    }
}

fn draw_heatmaps<DB: DrawingBackend>(
    root: DrawingArea<DB, Shift>,
    title: &str,
    maps: &[(String, Mat<f64>)],
) -> Result<()>
where
    DB::ErrorType: 'static,
{
    let root = white_and_titled(root, title)?;
    // One colour scale for all panels, so that the difference reads against the block.
    let scale = maps
        .iter()
        .flat_map(|(_, m)| {
            m.col_iter()
                .flat_map(|c| c.iter().map(|x| x.abs()).collect::<Vec<_>>())
        })
        .fold(0.0, f64::max);
    for (area, (name, m)) in root.split_evenly((1, maps.len())).iter().zip(maps) {
        let n = m.nrows();
        let mut chart = ChartBuilder::on(area)
            .caption(
                format!(
                    "{name} (max |x| {:.2e})",
                    m.col_iter()
                        .flat_map(|c| c.iter().map(|x| x.abs()).collect::<Vec<_>>())
                        .fold(0.0, f64::max)
                ),
                ("sans-serif", 15),
            )
            .margin(10)
            .x_label_area_size(25)
            .y_label_area_size(35)
            .build_cartesian_2d(0..n, (0..n).into_segmented())
            .map_err(|e| anyhow!("{e}"))?;
        chart
            .configure_mesh()
            .disable_mesh()
            .x_labels(5)
            .y_labels(5)
            .draw()
            .map_err(|e| anyhow!("{e}"))?;
        let plotting = chart.plotting_area();
        for i in 0..n {
            for j in 0..n {
                let t = if scale > 0.0 { m[(i, j)] / scale } else { 0.0 };
                // Square-root scale: small entries stay visible next to large ones.
                let t = t.signum() * t.abs().sqrt();
                plotting
                    .draw(&Rectangle::new(
                        [
                            (j, SegmentValue::Exact(i)),
                            (j + 1, SegmentValue::Exact(i + 1)),
                        ],
                        diverging(t).filled(),
                    ))
                    .map_err(|e| anyhow!("{e}"))?;
            }
        }
    }
    root.present().map_err(|e| anyhow!("{e}"))?;
    Ok(())
}

/// Matrices side by side as heatmaps on one colour scale (√ of |x|/max, signed).
pub fn heatmaps(path: &Path, title: &str, maps: &[(String, Mat<f64>)]) -> Result<()> {
    render!(
        path,
        (420 * maps.len() as u32, 460),
        draw_heatmaps(title, maps)
    )
}
