//! Plots as SVG and PNG: HDR latency curves, throughput over time, and
//! compression ratio against batch size.
//!
//! Text is laid out with ab_glyph from a TrueType font found at run time
//! (DejaVu Sans on Debian, or `SLUICE_BENCH_FONT`), never through fontconfig,
//! so the harness builds without system font libraries. Without a font no
//! plot is drawn and the caller is told why.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use anyhow::{anyhow, bail, Result};
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::{register_font, FontStyle};

use crate::compression::{CompressionResult, BATCH_SIZES};
use crate::report::RunResult;

const SIZE: (u32, u32) = (1000, 600);
const FONT: &str = "sans-serif";
const FONT_PATHS: &[&str] = &[
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
    "/usr/share/fonts/liberation-sans/LiberationSans-Regular.ttf",
];
const COLORS: [RGBColor; 10] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
];

/// Registers the first font found; the outcome is remembered.
fn font() -> Result<(), String> {
    static READY: OnceLock<Result<(), String>> = OnceLock::new();
    READY
        .get_or_init(|| {
            let env = std::env::var("SLUICE_BENCH_FONT").ok();
            let candidates = env.iter().map(String::as_str).chain(FONT_PATHS.iter().copied());
            for path in candidates {
                if let Ok(bytes) = std::fs::read(path) {
                    // Leaked once per process: plotters keeps fonts forever.
                    let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
                    if register_font(FONT, FontStyle::Normal, bytes).is_ok() {
                        return Ok(());
                    }
                }
            }
            Err(format!(
                "no TrueType font found (tried {}); install fonts-dejavu-core or set SLUICE_BENCH_FONT",
                FONT_PATHS.join(", ")
            ))
        })
        .clone()
}

/// Draws with `$draw` into `$dir/$stem.svg` and `.png`; returns file names.
macro_rules! render {
    ($dir:expr, $stem:expr, $draw:expr) => {{
        let svg: PathBuf = $dir.join(format!("{}.svg", $stem));
        let png: PathBuf = $dir.join(format!("{}.png", $stem));
        {
            let root = SVGBackend::new(&svg, SIZE).into_drawing_area();
            ($draw)(&root)?;
            root.present()
                .map_err(|e| anyhow!("{}: {e}", svg.display()))?;
        }
        {
            let root = BitMapBackend::new(&png, SIZE).into_drawing_area();
            ($draw)(&root)?;
            root.present()
                .map_err(|e| anyhow!("{}: {e}", png.display()))?;
        }
        vec![format!("{}.svg", $stem), format!("{}.png", $stem)]
    }};
}

fn e<E: std::fmt::Debug>(err: E) -> anyhow::Error {
    anyhow!("plotting: {err:?}")
}

/// The run's plots, written into `dir`; returns their file names.
pub fn run_plots(run: &RunResult, dir: &Path) -> Result<Vec<String>> {
    if let Err(why) = font() {
        bail!("{why}");
    }
    let mut files = Vec::new();
    for (stem, which) in [
        ("latency_publish", "publish"),
        ("latency_e2e", "end-to-end"),
    ] {
        files.extend(render!(dir, stem, |a| latency_curve(a, run, which)));
    }
    files.extend(render!(dir, "throughput", |a| throughput(a, run)));
    Ok(files)
}

/// HDR style: x is the number of nines, `-log10(1 - p)`.
fn latency_curve<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    run: &RunResult,
    which: &str,
) -> Result<()> {
    area.fill(&WHITE).map_err(e)?;
    let series: Vec<(String, Vec<(f64, f64)>)> = run
        .ordered()
        .iter()
        .map(|t| {
            let curve = if which == "publish" {
                &t.publish_latency_curve
            } else {
                &t.e2e_latency_curve
            };
            let pts = curve
                .iter()
                .map(|(p, us)| {
                    (
                        -(1.0 - p / 100.0).max(1e-9).log10(),
                        (*us as f64 / 1000.0).max(0.001),
                    )
                })
                .collect();
            (t.name.clone(), pts)
        })
        .collect();
    let y_max = series
        .iter()
        .flat_map(|(_, s)| s.iter().map(|p| p.1))
        .fold(0.01, f64::max)
        * 2.0;
    let y_min = series
        .iter()
        .flat_map(|(_, s)| s.iter().map(|p| p.1))
        .fold(y_max, f64::min)
        / 2.0;
    let mut chart = ChartBuilder::on(area)
        .caption(
            format!("{which} latency by percentile — {}", run.workload.name),
            (FONT, 22),
        )
        .margin(15)
        .x_label_area_size(45)
        .y_label_area_size(70)
        .build_cartesian_2d(0f64..5f64, (y_min.max(0.001)..y_max).log_scale())
        .map_err(e)?;
    chart
        .configure_mesh()
        .x_desc("percentile")
        .y_desc("latency (ms)")
        .x_labels(6)
        .x_label_formatter(&|x| format!("{}%", trim(100.0 * (1.0 - 10f64.powf(-x)))))
        .label_style((FONT, 14))
        .draw()
        .map_err(e)?;
    for (i, (name, pts)) in series.into_iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        chart
            .draw_series(LineSeries::new(pts, color.stroke_width(2)))
            .map_err(e)?
            .label(name)
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
            });
    }
    legend(&mut chart)
}

fn throughput<DB: DrawingBackend>(area: &DrawingArea<DB, Shift>, run: &RunResult) -> Result<()> {
    area.fill(&WHITE).map_err(e)?;
    let targets = run.ordered();
    let t_max = targets
        .iter()
        .flat_map(|t| t.throughput.iter().map(|s| s.t))
        .fold(1.0, f64::max);
    let y_max = targets
        .iter()
        .flat_map(|t| {
            t.throughput
                .iter()
                .map(|s| s.publish_msgs.max(s.consume_msgs))
        })
        .fold(1.0, f64::max)
        * 1.1;
    let mut chart = ChartBuilder::on(area)
        .caption(format!("throughput — {}", run.workload.name), (FONT, 22))
        .margin(15)
        .x_label_area_size(45)
        .y_label_area_size(90)
        .build_cartesian_2d(0f64..t_max, 0f64..y_max)
        .map_err(e)?;
    chart
        .configure_mesh()
        .x_desc("seconds since start (warm-up included)")
        .y_desc("messages / s")
        .label_style((FONT, 14))
        .draw()
        .map_err(e)?;
    for (i, t) in targets.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        let publish: Vec<(f64, f64)> = t.throughput.iter().map(|s| (s.t, s.publish_msgs)).collect();
        let consume: Vec<(f64, f64)> = t.throughput.iter().map(|s| (s.t, s.consume_msgs)).collect();
        chart
            .draw_series(LineSeries::new(publish, color.stroke_width(2)))
            .map_err(e)?
            .label(format!("{} publish", t.name))
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
            });
        let faded = color.mix(0.5);
        chart
            .draw_series(LineSeries::new(consume, faded.stroke_width(2)))
            .map_err(e)?
            .label(format!("{} consume", t.name))
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], faded.stroke_width(2))
            });
    }
    legend(&mut chart)
}

/// One plot per dataset: ratio against messages per batch, a line per codec.
pub fn compression_plots(r: &CompressionResult, dir: &Path) -> Result<Vec<String>> {
    if let Err(why) = font() {
        bail!("{why}");
    }
    let mut datasets: Vec<&str> = r.rows.iter().map(|x| x.dataset.as_str()).collect();
    datasets.dedup();
    let mut files = Vec::new();
    for d in datasets {
        let stem = format!("compression_{d}");
        files.extend(render!(dir, stem, |a| compression_ratio(a, r, d)));
    }
    Ok(files)
}

fn compression_ratio<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    r: &CompressionResult,
    dataset: &str,
) -> Result<()> {
    area.fill(&WHITE).map_err(e)?;
    let rows: Vec<_> = r.rows.iter().filter(|x| x.dataset == dataset).collect();
    let y_max = rows.iter().map(|x| x.ratio).fold(1.0, f64::max) * 1.1;
    let x_max = *BATCH_SIZES.last().expect("non-empty") as f64;
    let mut chart = ChartBuilder::on(area)
        .caption(
            format!("compression ratio vs batch size — {dataset}"),
            (FONT, 22),
        )
        .margin(15)
        .x_label_area_size(45)
        .y_label_area_size(60)
        .build_cartesian_2d((1f64..x_max).log_scale(), 0f64..y_max)
        .map_err(e)?;
    chart
        .configure_mesh()
        .x_desc("messages per compressed batch")
        .y_desc("compression ratio (raw / compressed)")
        .label_style((FONT, 14))
        .draw()
        .map_err(e)?;
    for (i, group) in rows.chunks(BATCH_SIZES.len()).enumerate() {
        let color = COLORS[i % COLORS.len()];
        let pts: Vec<(f64, f64)> = group
            .iter()
            .map(|x| (x.batch_messages as f64, x.ratio))
            .collect();
        chart
            .draw_series(LineSeries::new(pts.clone(), color.stroke_width(2)))
            .map_err(e)?
            .label(group[0].codec_label.clone())
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
            });
        chart
            .draw_series(pts.into_iter().map(|p| Circle::new(p, 3, color.filled())))
            .map_err(e)?;
    }
    legend(&mut chart)
}

fn legend<'a, DB: DrawingBackend + 'a, CT: CoordTranslate>(
    chart: &mut ChartContext<'a, DB, CT>,
) -> Result<()> {
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .label_font((FONT, 14))
        .position(SeriesLabelPosition::UpperLeft)
        .draw()
        .map_err(e)
}

/// `99.90000001` -> `99.9`.
fn trim(v: f64) -> String {
    let s = format!("{v:.4}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::tests::sample_run;

    #[test]
    fn run_plots_are_written_when_a_font_exists() {
        if font().is_err() {
            return; // No font on this machine: plots are skipped by design.
        }
        let mut run = sample_run(&[("sluice", 1.0), ("other", 0.5)]);
        for t in run.targets.values_mut() {
            t.e2e_latency_curve = vec![(0.0, 100), (90.0, 200), (99.99, 5000)];
            t.publish_latency_curve = t.e2e_latency_curve.clone();
            t.throughput = (1..=3)
                .map(|i| crate::stats::Sample {
                    t: i as f64,
                    publish_msgs: 10.0,
                    consume_msgs: 9.0,
                    asked_msgs: 10.0,
                })
                .collect();
        }
        let dir = std::env::temp_dir().join(format!("sluice-bench-plot-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let files = run_plots(&run, &dir).unwrap();
        assert_eq!(files.len(), 6);
        let svg = std::fs::read_to_string(dir.join("latency_e2e.svg")).unwrap();
        assert!(svg.contains("<svg") && svg.contains("sluice"));
        assert!(std::fs::metadata(dir.join("throughput.png")).unwrap().len() > 1000);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn percentile_labels_are_trimmed() {
        assert_eq!(trim(99.90000001), "99.9");
        assert_eq!(trim(90.0), "90");
    }
}
