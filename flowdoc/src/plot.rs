//! Motion traces for people: scale, theta, tx and ty of an `_optical_flow.json` against
//! time or frame number, four panels in one SVG or PNG, invalid entries marked in red,
//! and behind them the regions derived from it as bands (grey: static; amber: a move).
//! The labels use a font built into the binary, so plots need no system fonts.

use std::path::Path;

use anyhow::{bail, Context};
use plotters::coord::types::RangedCoordf64;
use plotters::coord::Shift;
use plotters::prelude::*;

use crate::read::{read, Sample};
use crate::regions::{self, Region, RegionType};

/// DejaVu Sans, cut down to Latin-1 and a few symbols (see `flowdoc/assets/README.md`).
const FONT: &[u8] = include_bytes!("../assets/DejaVuSans-subset.ttf");

/// The size of a plot in pixels (SVG user units).
const SIZE: (u32, u32) = (1200, 1000);

/// The colour of the marks for invalid entries.
pub const INVALID: RGBColor = RGBColor(220, 0, 0);

/// The kinds of file a plot is written as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Scalable, for browsers and papers.
    Svg,
    /// A bitmap, for chat, e-mail and slides.
    Png,
}

impl Format {
    /// The format named by `path`'s extension.
    pub fn of(path: &Path) -> anyhow::Result<Format> {
        match path
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase)
            .as_deref()
        {
            Some("svg") => Ok(Format::Svg),
            Some("png") => Ok(Format::Png),
            _ => bail!(
                "cannot tell the plot format of {}: name it FILE.svg or FILE.png",
                path.display()
            ),
        }
    }
}

/// The x axis.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Axis {
    /// Seconds from the start of the video.
    Time,
    /// Frame number.
    Frame,
}

/// Plots the document at `input` into `output` (SVG or PNG, by its extension).
pub fn plot_file(input: &Path, output: &Path, axis: Axis) -> anyhow::Result<usize> {
    let bytes = std::fs::read(input).with_context(|| format!("reading {}", input.display()))?;
    plot(&bytes, output, axis, &input.display().to_string())
        .with_context(|| format!("plotting {}", input.display()))
}

/// Plots `document` (an `_optical_flow.json`'s bytes) into `output` (SVG or PNG, by its
/// extension); returns how many entries were drawn.
pub fn plot(document: &[u8], output: &Path, axis: Axis, title: &str) -> anyhow::Result<usize> {
    let format = Format::of(output)?;
    let prepared = Prepared::of(document)?;
    let traces = prepared.traces(axis, title);
    match format {
        Format::Svg => traces.draw(SVGBackend::new(output, SIZE).into_drawing_area()),
        Format::Png => traces.draw(BitMapBackend::new(output, SIZE).into_drawing_area()),
    }
    .with_context(|| format!("writing the plot {}", output.display()))?;
    Ok(prepared.entries.len())
}

/// The plot of `document` as an SVG document in memory (for `gridctl serve`).
pub fn plot_svg(document: &[u8], axis: Axis, title: &str) -> anyhow::Result<String> {
    let prepared = Prepared::of(document)?;
    let mut svg = String::new();
    prepared
        .traces(axis, title)
        .draw(SVGBackend::with_string(&mut svg, SIZE).into_drawing_area())?;
    Ok(svg)
}

/// What a plot of one document draws: its entries (at least one, at most
/// [`MAX_ENTRIES`](crate::limits::MAX_ENTRIES)), its regions and its frame rate.
struct Prepared {
    entries: Vec<Sample>,
    regions: Vec<Region>,
    fps: f64,
}

impl Prepared {
    fn of(document: &[u8]) -> anyhow::Result<Prepared> {
        let doc = read(document).map_err(anyhow::Error::msg)?;
        if doc.spelling.is_none() {
            bail!("no frameStats (or frame_stats) array: is this an _optical_flow.json?");
        }
        let entries = doc.samples();
        if entries.is_empty() {
            bail!("the document has no entries to plot");
        }
        register_font();
        Ok(Prepared {
            entries,
            // A document region finding cannot read is still plotted, without bands.
            regions: regions::Table::of(&doc)
                .map(|table| regions::regions(&table))
                .unwrap_or_default(),
            fps: doc.fps(),
        })
    }

    fn traces<'a>(&'a self, axis: Axis, title: &'a str) -> Traces<'a> {
        Traces {
            entries: &self.entries,
            regions: &self.regions,
            axis,
            fps: self.fps,
            title,
        }
    }
}

/// Makes the built-in font the "sans-serif" of every plot (once per process).
fn register_font() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        if plotters::style::register_font("sans-serif", FontStyle::Normal, FONT).is_err() {
            // The font is part of the binary; a bad one is a build mistake.
            panic!("the built-in plot font is not a valid font");
        }
    });
}

/// What one plot shows.
struct Traces<'a> {
    entries: &'a [Sample],
    regions: &'a [Region],
    axis: Axis,
    fps: f64,
    title: &'a str,
}

impl Traces<'_> {
    fn x(&self, e: &Sample) -> f64 {
        self.x_of(e.frame as f64)
    }

    fn x_of(&self, frame: f64) -> f64 {
        match self.axis {
            Axis::Time => (frame - 1.0) / self.fps,
            Axis::Frame => frame,
        }
    }

    /// Draws the title and the four panels on `root`, then writes the file.
    fn draw<DB: DrawingBackend>(&self, root: DrawingArea<DB, Shift>) -> anyhow::Result<()> {
        root.fill(&WHITE).map_err(draw_err)?;
        let (top, body) = root.split_vertically(40);
        top.draw(&Text::new(
            self.title.to_owned(),
            (10, 10),
            ("sans-serif", 18),
        ))
        .map_err(draw_err)?;
        for (i, panel) in body.split_evenly((4, 1)).iter().enumerate() {
            self.panel(panel, i)?;
        }
        root.present().map_err(draw_err)
    }

    /// Component `i` of the valid entries, in runs of consecutive valid entries, each
    /// thinned to what the plot's width can show.
    fn valid_runs(&self, i: usize, x: (f64, f64)) -> Vec<Vec<(f64, f64)>> {
        self.entries
            .split(|e| !e.valid)
            .filter(|run| !run.is_empty())
            .map(|run| thin(run.iter().map(|e| (self.x(e), e.similarity[i])), x))
            .collect()
    }

    /// Panel `i`: component `i` of the similarity, invalid entries at the identity.
    fn panel<DB: DrawingBackend>(
        &self,
        panel: &DrawingArea<DB, Shift>,
        i: usize,
    ) -> anyhow::Result<()> {
        const NAMES: [&str; 4] = ["scale", "theta (rad)", "tx (px)", "ty (px)"];
        let entries = self.entries;
        let (x0, x1) = axis_range(self.x(&entries[0]), self.x(&entries[entries.len() - 1]));
        let identity: f64 = [1.0, 0.0, 0.0, 0.0][i];
        let (lo, hi) = entries
            .iter()
            .filter(|e| e.valid)
            .map(|e| e.similarity[i])
            .fold((identity, identity), |(l, h), v| (l.min(v), h.max(v)));
        let (lo, hi) = axis_range(lo, hi);
        let pad = (hi - lo) * 0.1;
        let (lo, hi) = (lo - pad, hi + pad);
        let last = i == 3;
        let mut chart = ChartBuilder::on(panel)
            .margin(8)
            .x_label_area_size(if last { 30 } else { 10 })
            .y_label_area_size(70)
            .caption(NAMES[i], ("sans-serif", 16))
            .build_cartesian_2d(x0..x1, lo..hi)
            .map_err(draw_err)?;
        let mut mesh = chart.configure_mesh();
        mesh.light_line_style(WHITE.mix(0.0));
        if last {
            mesh.x_desc(match self.axis {
                Axis::Time => "seconds",
                Axis::Frame => "frame",
            });
        }
        mesh.draw().map_err(draw_err)?;
        self.bands(&mut chart, (lo, hi), i == 0)?;
        // A line only through consecutive valid entries, so an invalid stretch shows as
        // a gap; a valid entry alone between invalid ones is a dot.
        for run in self.valid_runs(i, (x0, x1)) {
            if let [point] = run[..] {
                chart
                    .draw_series(std::iter::once(Circle::new(point, 2, BLUE.filled())))
                    .map_err(draw_err)?;
            } else {
                chart
                    .draw_series(LineSeries::new(run, &BLUE))
                    .map_err(draw_err)?;
            }
        }
        let invalid = thin(
            entries
                .iter()
                .filter(|e| !e.valid)
                .map(|e| (self.x(e), identity)),
            (x0, x1),
        );
        chart
            .draw_series(
                invalid
                    .into_iter()
                    .map(|p| Circle::new(p, 3, INVALID.filled())),
            )
            .map_err(draw_err)?;
        Ok(())
    }
}

/// The most magnitude an axis shows: a document that passed the sink's check stays far
/// inside it, and plotters lays out any range within it in bounded time.
const AXIS_LIMIT: f64 = 1e12;

/// An axis range plotters can always lay out, around the values from `lo` to `hi`:
/// finite, within [`AXIS_LIMIT`], and wide enough that its ticks are distinct numbers
/// (a range narrower than the spacing of floating-point numbers around it would make
/// plotters' tick layout loop for ever, as would an infinite one).
fn axis_range(lo: f64, hi: f64) -> (f64, f64) {
    let shown = |v: f64| {
        if v.is_nan() {
            0.0
        } else {
            v.clamp(-AXIS_LIMIT, AXIS_LIMIT)
        }
    };
    let (lo, hi) = (shown(lo.min(hi)), shown(lo.max(hi)));
    let least = (lo.abs().max(hi.abs()) * 1e-6).max(1e-9);
    if hi - lo >= least {
        return (lo, hi);
    }
    let mid = lo / 2.0 + hi / 2.0;
    (mid - least / 2.0, mid + least / 2.0)
}

/// The most region bands drawn: a 14-minute CamHD video has a few dozen regions.
const MAX_BANDS: usize = 2_000;

/// Columns a trace is thinned to: twice the plot's width.
const COLUMNS: f64 = 2.0 * SIZE.0 as f64;

/// `points` (in x order) as the plot can show them: per column of the x range `x`, the
/// lowest and the highest (in their order), so a spike survives and a 500,000-entry
/// document draws a few thousand points, not half a million. Values are kept within
/// [`AXIS_LIMIT`].
fn thin(points: impl Iterator<Item = (f64, f64)>, (x0, x1): (f64, f64)) -> Vec<(f64, f64)> {
    let column = |x: f64| ((x - x0) / (x1 - x0) * COLUMNS).clamp(-1.0, COLUMNS + 1.0) as i64;
    let mut out = Vec::new();
    let mut current: Option<Column> = None;
    for (x, y) in points {
        let p = (x, y.clamp(-AXIS_LIMIT, AXIS_LIMIT));
        match &mut current {
            Some(c) if c.at == column(x) => c.add(p),
            _ => {
                if let Some(done) = current.take() {
                    done.flush(&mut out);
                }
                current = Some(Column {
                    at: column(x),
                    low: p,
                    high: p,
                });
            }
        }
    }
    if let Some(done) = current {
        done.flush(&mut out);
    }
    out
}

/// The lowest and highest points of one column of a trace.
struct Column {
    at: i64,
    low: (f64, f64),
    high: (f64, f64),
}

impl Column {
    fn add(&mut self, p: (f64, f64)) {
        if p.1 < self.low.1 {
            self.low = p;
        }
        if p.1 > self.high.1 {
            self.high = p;
        }
    }

    /// Both points, in x order (one, when they are the same).
    fn flush(self, out: &mut Vec<(f64, f64)>) {
        let (a, b) = if self.low.0 <= self.high.0 {
            (self.low, self.high)
        } else {
            (self.high, self.low)
        };
        out.push(a);
        if b != a {
            out.push(b);
        }
    }
}

impl Traces<'_> {
    /// The regions as bands behind a panel's traces, named in the first panel.
    fn bands<DB: DrawingBackend>(
        &self,
        chart: &mut ChartContext<DB, Cartesian2d<RangedCoordf64, RangedCoordf64>>,
        (lo, hi): (f64, f64),
        named: bool,
    ) -> anyhow::Result<()> {
        for r in self.regions.iter().take(MAX_BANDS) {
            let (x0, x1) = (
                self.x_of(r.start_frame as f64),
                self.x_of(r.end_frame as f64),
            );
            let colour = match r.kind {
                RegionType::Static => RGBColor(225, 225, 225),
                RegionType::Short | RegionType::Unknown => RGBColor(240, 240, 250),
                _ => RGBColor(255, 228, 181),
            };
            chart
                .draw_series(std::iter::once(Rectangle::new(
                    [(x0, lo), (x1, hi)],
                    colour.filled(),
                )))
                .map_err(draw_err)?;
            if named && r.kind != RegionType::Static {
                let name = serde_json::to_value(r.kind)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_owned))
                    .unwrap_or_default();
                chart
                    .draw_series(std::iter::once(Text::new(
                        name,
                        (x0, hi),
                        ("sans-serif", 12),
                    )))
                    .map_err(draw_err)?;
            }
        }
        Ok(())
    }
}

fn draw_err<E: std::fmt::Debug>(e: E) -> anyhow::Error {
    anyhow::anyhow!("drawing the plot failed: {e:?}")
}
