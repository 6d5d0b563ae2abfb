//! The benchmark's picture (`--plot FILE.svg`): one panel per run, requests per second by
//! outcome over time (simulated seconds from the load's start), with the run's moments marked:
//! the notice, the cordon, the first and last eviction, the instance's end and full capacity.

use std::collections::BTreeMap;
use std::path::Path;

use costop_traffic::loadgen::{Outcome, Record};
use plotters::prelude::*;

/// What one panel shows.
pub struct Panel<'a> {
    pub title: String,
    pub records: &'a [Record],
    /// Simulated seconds per real second (record times are real).
    pub scale: f64,
    /// (label, simulated seconds from the start).
    pub marks: Vec<(&'static str, f64)>,
}

/// The outcome classes drawn, in legend order.
const CLASSES: [(&str, RGBColor); 6] = [
    ("2xx", RGBColor(46, 139, 87)),
    ("502", RGBColor(200, 30, 30)),
    ("503", RGBColor(230, 140, 0)),
    ("504", RGBColor(128, 0, 160)),
    ("connection error", RGBColor(20, 20, 20)),
    ("other", RGBColor(120, 120, 120)),
];

fn class(o: &Outcome) -> &'static str {
    match o {
        Outcome::Status(s) if (200..300).contains(s) => "2xx",
        Outcome::Status(502) => "502",
        Outcome::Status(503) => "503",
        Outcome::Status(504) => "504",
        Outcome::ConnectError | Outcome::Reset => "connection error",
        _ => "other",
    }
}

/// Requests per (simulated) second of each class, by whole second.
fn rates(panel: &Panel<'_>) -> BTreeMap<&'static str, BTreeMap<i64, f64>> {
    let mut out: BTreeMap<&'static str, BTreeMap<i64, f64>> = BTreeMap::new();
    for r in panel.records {
        let t = (r.sent_at.as_secs_f64() * panel.scale).floor() as i64;
        *out.entry(class(&r.outcome))
            .or_default()
            .entry(t)
            .or_insert(0.0) += 1.0;
    }
    // Counts per simulated second → requests per simulated second.
    out
}

/// Draw every panel into an SVG at `path`.
pub fn draw(path: &Path, panels: &[Panel<'_>]) -> Result<(), Box<dyn std::error::Error>> {
    let height = 260 * u32::try_from(panels.len().max(1))?;
    let root = SVGBackend::new(path, (1100, height)).into_drawing_area();
    root.fill(&WHITE)?;
    let areas = root.split_evenly((panels.len().max(1), 1));
    for (panel, area) in panels.iter().zip(areas) {
        let rates = rates(panel);
        let end = panel
            .records
            .iter()
            .map(|r| r.sent_at.as_secs_f64() * panel.scale)
            .fold(1.0, f64::max);
        let top = rates
            .values()
            .flat_map(|m| m.values().copied())
            .fold(1.0, f64::max)
            * 1.15;
        let mut chart = ChartBuilder::on(&area)
            .caption(&panel.title, ("sans-serif", 16))
            .margin(8)
            .x_label_area_size(28)
            .y_label_area_size(48)
            .build_cartesian_2d(0f64..end, 0f64..top)?;
        chart
            .configure_mesh()
            .x_desc("seconds (simulated)")
            .y_desc("requests / s")
            .light_line_style(WHITE.mix(0.0))
            .draw()?;
        for (name, color) in CLASSES {
            let Some(series) = rates.get(name) else {
                continue;
            };
            chart
                .draw_series(LineSeries::new(
                    series.iter().map(|(t, n)| (*t as f64 + 0.5, *n)),
                    color.stroke_width(2),
                ))?
                .label(name)
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 16, y)], color.stroke_width(2))
                });
        }
        for (label, at) in &panel.marks {
            chart.draw_series(std::iter::once(PathElement::new(
                vec![(*at, 0.0), (*at, top)],
                BLUE.mix(0.5).stroke_width(1),
            )))?;
            chart.draw_series(std::iter::once(Text::new(
                label.to_string(),
                (*at, top * 0.97),
                ("sans-serif", 11).into_font().color(&BLUE),
            )))?;
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK.mix(0.3))
            .draw()?;
    }
    root.present()?;
    Ok(())
}
