//! Region finding as CamHD_motion_metadata's `find_regions.py` (findRegions 1.0) does it,
//! followed by `RegionFile.squash_gaps(delta=30)` as `region_file_maker.py` calls it:
//! static stretches from the stable valid entries, a classified move between each two,
//! short moves squashed into their neighbours. Every constant, comparison and quirk is
//! the original's; `tests/regions.rs` holds this to the original's own output.

use super::table::{Row, Table};

/// The version of the original algorithm this reproduces.
pub const FIND_REGIONS_VERSION: &str = "1.0";

/// The `delta` the original passes to `squash_gaps`.
pub const SQUASH_DELTA: i64 = 30;

/// Entries more than this many frames apart start a new static stretch (the original's
/// `delta * 1.01` with `delta = 10`, written for stride 10).
const STRETCH_BREAK: f64 = 10.0 * 1.01;

/// A move starts this many frames after the static region before it ends (hard-coded
/// in the original: "Hm, 10 is hard coded right now...").
const MOVE_OFFSET: i64 = 10;

/// What a region is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum RegionType {
    /// The camera holds still.
    #[serde(rename = "static")]
    Static,
    /// Mean scale above 1.05.
    #[serde(rename = "zoom_in")]
    ZoomIn,
    /// Mean scale below 0.95.
    #[serde(rename = "zoom_out")]
    ZoomOut,
    /// Mean ty above 10 (and |tx| at most 10).
    N,
    /// Mean tx below -10, ty above 10.
    NE,
    /// Mean tx below -10.
    E,
    /// Mean tx below -10, ty below -10.
    SE,
    /// Mean ty below -10.
    S,
    /// Mean tx above 10, ty below -10.
    SW,
    /// Mean tx above 10.
    W,
    /// Mean tx above 10, ty above 10.
    NW,
    /// No valid entry inside.
    #[serde(rename = "short")]
    Short,
    /// None of the above.
    #[serde(rename = "unknown")]
    Unknown,
}

/// The means over a region's valid entries (`None` where it has none: the original's
/// NaN), and its `size`: entries times the table's columns.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Stats {
    /// Mean scale.
    #[serde(rename = "scaleMean")]
    pub scale_mean: Option<f64>,
    /// Mean x translation.
    #[serde(rename = "txMean")]
    pub tx_mean: Option<f64>,
    /// Mean y translation.
    #[serde(rename = "tyMean")]
    pub ty_mean: Option<f64>,
    /// Entries times columns (pandas' `DataFrame.size`, as the original records it).
    pub size: u64,
}

/// One region.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Region {
    /// First frame.
    #[serde(rename = "startFrame")]
    pub start_frame: i64,
    /// Last frame of a static region; first frame of what follows a move.
    #[serde(rename = "endFrame")]
    pub end_frame: i64,
    /// What it is.
    #[serde(rename = "type")]
    pub kind: RegionType,
    /// Its statistics (for a region squashed into, those it had before).
    pub stats: Stats,
}

/// The regions of `table`, as the original writes them: found, sorted, squashed.
pub fn regions(table: &Table) -> Vec<Region> {
    let mut regions = find(table);
    squash_gaps(&mut regions, SQUASH_DELTA);
    regions
}

/// `find_regions`: static regions and the moves between them, sorted by start.
fn find(table: &Table) -> Vec<Region> {
    let stable: Vec<&Row> = table
        .rows
        .iter()
        .filter(|r| r.trans() < 100.0 && (r.scale - 1.0).abs() < 0.01)
        .collect();
    let stretches = stretches(&stable);
    let mut regions: Vec<Region> = stretches
        .iter()
        .map(|&(start, end)| Region {
            start_frame: start,
            end_frame: end,
            kind: RegionType::Static,
            stats: stats(table, start, end),
        })
        .collect();
    for pair in stretches.windows(2) {
        regions.push(classify_move(table, pair[0].1 + MOVE_OFFSET, pair[1].0));
    }
    // Stable, as Python's sort.
    regions.sort_by_key(|r| r.start_frame);
    regions
}

/// `contiguous_region`: runs of stable entries no more than `STRETCH_BREAK` frames
/// apart, as (first, last) frame, keeping those whose last is more than one frame
/// after their first.
fn stretches(stable: &[&Row]) -> Vec<(i64, i64)> {
    let mut out: Vec<(i64, i64)> = Vec::new();
    let mut prev: Option<i64> = None;
    for r in stable {
        match (prev, out.last_mut()) {
            (Some(p), Some(last)) if (r.frame - p) as f64 <= STRETCH_BREAK => {
                last.0 = last.0.min(r.frame);
                last.1 = last.1.max(r.frame);
            }
            _ => out.push((r.frame, r.frame)),
        }
        prev = Some(r.frame);
    }
    out.retain(|&(first, last)| last - first > 1);
    out
}

/// `calc_stats`: the valid entries with `start <= frame < end`: a slice of the rows,
/// which are sorted by frame, found by bisection.
fn stats(table: &Table, start: i64, end: i64) -> Stats {
    let from = table.rows.partition_point(|r| r.frame < start);
    let to = from + table.rows[from..].partition_point(|r| r.frame < end);
    let inside = &table.rows[from..to];
    let mean = |f: fn(&Row) -> f64| {
        let values: Vec<f64> = inside.iter().map(f).collect();
        (!values.is_empty()).then(|| pairwise_sum(&values) / values.len() as f64)
    };
    Stats {
        scale_mean: mean(|r| r.scale),
        tx_mean: mean(|r| r.tx),
        ty_mean: mean(|r| r.ty),
        size: inside.len() as u64 * table.columns,
    }
}

/// `analyze_bounds`: a move between two static regions, classified by its means.
fn classify_move(table: &Table, start: i64, end: i64) -> Region {
    let stats = stats(table, start, end);
    let kind = match (stats.scale_mean, stats.tx_mean, stats.ty_mean) {
        _ if stats.size < 2 => RegionType::Short,
        (Some(scale), Some(tx), Some(ty)) => direction(tx, ty).unwrap_or(if scale < 0.95 {
            RegionType::ZoomOut
        } else if scale > 1.05 {
            RegionType::ZoomIn
        } else {
            RegionType::Unknown
        }),
        // Only a table of one column could have entries and a size below 2.
        _ => RegionType::Unknown,
    };
    Region {
        start_frame: start,
        end_frame: end,
        kind,
        stats,
    }
}

/// The direction of a move, which the original lets override a zoom.
fn direction(tx: f64, ty: f64) -> Option<RegionType> {
    use RegionType::*;
    let vertical = |north, south, level| {
        if ty > 10.0 {
            north
        } else if ty < -10.0 {
            south
        } else {
            level
        }
    };
    if tx > 10.0 {
        Some(vertical(NW, SW, W))
    } else if tx < -10.0 {
        Some(vertical(NE, SE, E))
    } else if ty > 10.0 {
        Some(N)
    } else if ty < -10.0 {
        Some(S)
    } else {
        None
    }
}

/// `RegionFile.squash_gaps`: an inner region spanning at most `delta` frames is merged
/// with its neighbours: the one after it takes the start of the one before, both others
/// go (the survivor keeps its own type and statistics, as in the original). The
/// original removes from a list as it walks it; this builds the result in one pass,
/// with the same decisions: the survivor is never looked at again as an inner region.
fn squash_gaps(regions: &mut Vec<Region>, delta: i64) {
    let mut input = std::mem::take(regions).into_iter().peekable();
    let Some(first) = input.next() else { return };
    let out = regions;
    out.push(first);
    while let Some(region) = input.next() {
        match input.peek_mut() {
            Some(next) if region.end_frame - region.start_frame <= delta => {
                let before = out.pop().expect("the result always holds a region");
                next.start_frame = before.start_frame;
                out.push(*next);
                input.next();
            }
            _ => out.push(region),
        }
    }
}

/// The sum numpy computes (pairwise, in blocks of eight), so that means agree with the
/// original's to the last bit, not only to rounding.
fn pairwise_sum(a: &[f64]) -> f64 {
    const BLOCK: usize = 128;
    let n = a.len();
    if n < 8 {
        a.iter().fold(0.0, |s, x| s + x)
    } else if n <= BLOCK {
        let mut r = [0.0; 8];
        r.copy_from_slice(&a[..8]);
        let whole = n - n % 8;
        for chunk in a[8..whole].chunks_exact(8) {
            for (acc, x) in r.iter_mut().zip(chunk) {
                *acc += x;
            }
        }
        let mut res = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
        for x in &a[whole..] {
            res += x;
        }
        res
    } else {
        let mut half = n / 2;
        half -= half % 8;
        pairwise_sum(&a[..half]) + pairwise_sum(&a[half..])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(frame: i64, scale: f64, tx: f64, ty: f64) -> Row {
        Row {
            frame,
            scale,
            tx,
            ty,
        }
    }

    fn table(rows: Vec<Row>) -> Table {
        Table { rows, columns: 13 }
    }

    /// Bounds and types, in order.
    fn shape(regions: &[Region]) -> Vec<(i64, i64, RegionType)> {
        regions
            .iter()
            .map(|r| (r.start_frame, r.end_frame, r.kind))
            .collect()
    }

    #[test]
    fn two_stills_and_a_pan_between_them() {
        let mut rows: Vec<Row> = (0..10).map(|i| row(1 + 10 * i, 1.0, 0.5, 0.0)).collect();
        rows.extend((10..20).map(|i| row(1 + 10 * i, 1.0, -30.0, 1.0)));
        rows.extend((20..30).map(|i| row(1 + 10 * i, 1.0, 0.0, -0.5)));
        let r = regions(&table(rows));
        assert_eq!(
            shape(&r),
            [
                (1, 91, RegionType::Static),
                (101, 201, RegionType::E),
                (201, 291, RegionType::Static)
            ]
        );
        // The move's entries are frames 101..=191; the static region leaves out its last.
        assert_eq!(r[1].stats.size, 10 * 13);
        assert_eq!(r[1].stats.tx_mean, Some(-30.0));
        assert_eq!(r[0].stats.size, 9 * 13);
    }

    #[test]
    fn a_move_with_no_valid_entry_is_short_with_undefined_means() {
        let rows = vec![
            row(1, 1.0, 0.0, 0.0),
            row(11, 1.0, 0.0, 0.0),
            row(21, 1.0, 0.0, 0.0),
            row(61, 1.0, 0.0, 0.0),
            row(71, 1.0, 0.0, 0.0),
            row(81, 1.0, 0.0, 0.0),
        ];
        let found = find(&table(rows));
        assert_eq!(found[1].kind, RegionType::Short);
        assert_eq!(found[1].stats.scale_mean, None);
        assert_eq!((found[1].start_frame, found[1].end_frame), (31, 61));
    }

    #[test]
    fn squashing_merges_a_short_inner_region_into_the_next_one() {
        let region = |start, end, kind| Region {
            start_frame: start,
            end_frame: end,
            kind,
            stats: Stats {
                scale_mean: None,
                tx_mean: None,
                ty_mean: None,
                size: 0,
            },
        };
        let mut r = vec![
            region(0, 100, RegionType::Static),
            region(110, 140, RegionType::E),
            region(140, 300, RegionType::Static),
            region(310, 341, RegionType::W),
            region(341, 500, RegionType::Static),
        ];
        squash_gaps(&mut r, SQUASH_DELTA);
        assert_eq!(
            shape(&r),
            [
                (0, 300, RegionType::Static),
                (310, 341, RegionType::W),
                (341, 500, RegionType::Static)
            ]
        );
    }

    #[test]
    fn the_sum_is_numpys_pairwise_sum() {
        // 0.1 summed 1000 times: a plain loop gives 99.9999999999986, numpy 100.00000000000001.
        let a = vec![0.1; 1000];
        assert_eq!(pairwise_sum(&a), 100.00000000000001);
        assert_eq!(pairwise_sum(&a[..7]), 0.7);
        assert_eq!(pairwise_sum(&[]), 0.0);
    }
}
