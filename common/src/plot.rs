//! Motion traces for people: scale, theta, tx and ty of an `_optical_flow.json` against
//! time or frame number, four panels in one SVG, invalid entries marked in red.
//! Reads version 1.1 (`frameStats`) and the older 1.0 spelling (`frame_stats`).

use std::path::Path;

use anyhow::{bail, Context};
use plotters::prelude::*;
use serde_json::Value;

/// The colour of the marks for invalid entries.
pub const INVALID: RGBColor = RGBColor(220, 0, 0);

/// One entry of the document.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Entry {
    /// The sampled frame.
    pub frame: u64,
    /// `[scale, theta, tx, ty]`.
    pub similarity: [f64; 4],
    /// Whether the estimate is valid.
    pub valid: bool,
}

/// The x axis.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Axis {
    /// Seconds from the start of the video.
    Time,
    /// Frame number.
    Frame,
}

/// The entries of a document, sorted by frame, in either spelling.
pub fn entries(doc: &Value) -> anyhow::Result<Vec<Entry>> {
    let stats = doc
        .get("frameStats")
        .or_else(|| doc.get("frame_stats"))
        .and_then(Value::as_array)
        .context("no frameStats (or frame_stats) array: is this an _optical_flow.json?")?;
    let mut out = Vec::with_capacity(stats.len());
    for s in stats {
        let frame = s
            .get("frameNumber")
            .or_else(|| s.get("frame_number"))
            .and_then(Value::as_u64);
        let flow = s.get("opticalFlow").unwrap_or(s);
        let sim: Option<Vec<f64>> = flow
            .get("similarity")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_f64).collect());
        let (Some(frame), Some(sim)) = (frame, sim) else {
            continue;
        };
        if sim.len() != 4 {
            continue;
        }
        let valid = flow.get("valid").and_then(Value::as_bool).unwrap_or(true);
        out.push(Entry {
            frame,
            similarity: [sim[0], sim[1], sim[2], sim[3]],
            valid,
        });
    }
    out.sort_by_key(|e| e.frame);
    Ok(out)
}

/// Frames per second of the document's movie (CamHD's 29.97 when it does not say).
fn fps(doc: &Value) -> f64 {
    let movie = &doc["movie"];
    match (movie["NumFrames"].as_f64(), movie["Duration"].as_f64()) {
        (Some(n), Some(d)) if n > 0.0 && d > 0.0 => n / d,
        _ => 30000.0 / 1001.0,
    }
}

/// Plots the document at `input` into the SVG file `output`.
pub fn plot_file(input: &Path, output: &Path, axis: Axis) -> anyhow::Result<usize> {
    let text =
        std::fs::read_to_string(input).with_context(|| format!("reading {}", input.display()))?;
    let doc: Value =
        serde_json::from_str(&text).with_context(|| format!("{} is not JSON", input.display()))?;
    plot(&doc, output, axis, &input.display().to_string())
}

/// Plots `doc` into the SVG file `output`; returns how many entries were drawn.
pub fn plot(doc: &Value, output: &Path, axis: Axis, title: &str) -> anyhow::Result<usize> {
    match output.extension().and_then(|e| e.to_str()) {
        Some("svg") => {}
        Some("png") => bail!("PNG output is not built yet (it needs font rendering); write .svg — browsers show it and `rsvg-convert -o plot.png plot.svg` converts it"),
        _ => bail!("the plot file must end in .svg"),
    }
    let entries = entries(doc)?;
    if entries.is_empty() {
        bail!("the document has no entries to plot");
    }
    let fps = fps(doc);
    let x = |e: &Entry| match axis {
        Axis::Time => (e.frame as f64 - 1.0) / fps,
        Axis::Frame => e.frame as f64,
    };
    let (x0, x1) = (
        x(&entries[0]),
        x(&entries[entries.len() - 1]).max(x(&entries[0]) + 1e-9),
    );
    let root = SVGBackend::new(output, (1200, 1000)).into_drawing_area();
    root.fill(&WHITE).map_err(draw_err)?;
    let (top, body) = root.split_vertically(40);
    top.draw(&Text::new(title.to_owned(), (10, 10), ("sans-serif", 18)))
        .map_err(draw_err)?;
    let names = ["scale", "theta (rad)", "tx (px)", "ty (px)"];
    for (i, panel) in body.split_evenly((4, 1)).iter().enumerate() {
        let valid: Vec<(f64, f64)> = entries
            .iter()
            .filter(|e| e.valid)
            .map(|e| (x(e), e.similarity[i]))
            .collect();
        let (mut lo, mut hi) = valid
            .iter()
            .fold((f64::MAX, f64::MIN), |(l, h), &(_, v)| (l.min(v), h.max(v)));
        let identity = [1.0, 0.0, 0.0, 0.0][i];
        lo = lo.min(identity);
        hi = hi.max(identity);
        let pad = ((hi - lo) * 0.1).max(1e-6);
        let mut chart = ChartBuilder::on(panel)
            .margin(8)
            .x_label_area_size(if i == 3 { 30 } else { 10 })
            .y_label_area_size(70)
            .caption(names[i], ("sans-serif", 16))
            .build_cartesian_2d(x0..x1, (lo - pad)..(hi + pad))
            .map_err(draw_err)?;
        let mut mesh = chart.configure_mesh();
        mesh.light_line_style(WHITE.mix(0.0));
        if i == 3 {
            mesh.x_desc(match axis {
                Axis::Time => "seconds",
                Axis::Frame => "frame",
            });
        }
        mesh.draw().map_err(draw_err)?;
        chart
            .draw_series(LineSeries::new(valid.iter().copied(), &BLUE))
            .map_err(draw_err)?;
        chart
            .draw_series(
                entries
                    .iter()
                    .filter(|e| !e.valid)
                    .map(|e| Circle::new((x(e), identity), 3, INVALID.filled())),
            )
            .map_err(draw_err)?;
    }
    root.present().map_err(draw_err)?;
    Ok(entries.len())
}

fn draw_err<E: std::fmt::Debug>(e: E) -> anyhow::Error {
    anyhow::anyhow!("drawing the plot failed: {e:?}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_spellings_are_read_and_sorted() {
        let v11 = serde_json::json!({"frameStats": [
            {"frameNumber": 11, "opticalFlow": {"similarity": [1.0, 0.0, 2.0, 3.0], "valid": true}},
            {"frameNumber": 1, "opticalFlow": {"similarity": [1.0, 0.0, 0.0, 0.0], "valid": false}}]});
        let e = entries(&v11).unwrap();
        assert_eq!(
            (e[0].frame, e[0].valid, e[1].similarity[3]),
            (1, false, 3.0)
        );
        let v10 = serde_json::json!({"frame_stats": [{"frame_number": 5, "similarity": [1.1, 0.0, 0.0, 0.0]}]});
        assert_eq!(entries(&v10).unwrap()[0].similarity[0], 1.1);
        assert!(entries(&serde_json::json!({"x": 1})).is_err());
    }
}
