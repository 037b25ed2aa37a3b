//! Pictures as hand-written SVG (no plotting crate: two chart kinds do not justify one).
//! Deterministic output: the same forecast gives the same bytes. Text boxes are estimated
//! (see [`layout`]) so that labels can be kept off each other and the canvas can hold them.

mod chart;
mod layout;

use std::fmt::Write as _;

use capacity::blocks::{BlockClass, BlockMap};
use capacity::forecast::{Forecast, SubnetForecast};

use chart::{Panel, Range, color, stroke};
use layout::{Doc, Rect, Text};

/// Minutes as hours, for the churn window's axis.
#[expect(clippy::cast_precision_loss, reason = "minutes of a window")]
fn hours(minute: u64) -> f64 {
    minute as f64 / 60.0
}

/// Subnet ids that share `key`, in order of first appearance, with the key.
fn grouped<K: PartialEq + Copy>(
    subnets: &[SubnetForecast],
    key: impl Fn(&SubnetForecast) -> K,
) -> Vec<(K, Vec<&str>)> {
    let mut groups: Vec<(K, Vec<&str>)> = Vec::new();
    for s in subnets {
        let k = key(s);
        match groups.iter_mut().find(|(g, _)| *g == k) {
            Some((_, ids)) => ids.push(&s.id),
            None => groups.push((k, vec![&s.id])),
        }
    }
    groups
}

/// The legend, right of the top panel: one entry per subnet with its stroke.
fn legend(doc: &mut Doc, f: &Forecast, x: f64, y: f64) {
    for (i, s) in f.subnets.iter().enumerate() {
        #[expect(clippy::cast_precision_loss, reason = "a handful of subnets")]
        let y = y + 22.0 * i as f64;
        let (width, dash) = stroke(i);
        let dash = if dash.is_empty() {
            String::new()
        } else {
            format!(r#" stroke-dasharray="{dash}""#)
        };
        let _ = writeln!(
            doc.shapes,
            r#"<line x1="{x:.1}" y1="{:.1}" x2="{:.1}" y2="{:.1}" stroke="{}" stroke-width="{width}"{dash}/>"#,
            y - 4.0,
            x + 28.0,
            y - 4.0,
            color(i)
        );
        doc.text(Text::new(
            x + 36.0,
            y,
            12.0,
            format!("{} {} ({} usable)", s.id, s.cidr, s.usable),
        ));
    }
}

/// Addresses in use per subnet under growth with the usable lines and exhaustion points (top),
/// and free /28s over the churn window with the moments /28s ran out (bottom). Each subnet keeps
/// its colour and stroke in both panels; the legend is right of the top panel.
pub fn forecast(f: &Forecast) -> String {
    let mut doc = Doc::default();
    let days = f
        .subnets
        .iter()
        .filter_map(|s| s.growth_series.last().map(|p| f64::from(p.0)))
        .fold(1.0, f64::max);
    let top = Panel {
        x: 80.0,
        y: 50.0,
        w: 620.0,
        h: 260.0,
        xr: Range::from_zero(days, 8.0),
        yr: Range::counts(
            f.subnets.iter().flat_map(|s| {
                s.growth_series
                    .iter()
                    .map(|p| f64::from(p.1))
                    .chain([f64::from(s.usable)])
            }),
            5.0,
        ),
    };
    growth(&mut doc, f, &top);
    legend(&mut doc, f, top.x + top.w + 24.0, top.y + 12.0);
    let window = f.window_hours.max(1.0 / 12.0);
    let bottom = Panel {
        x: 80.0,
        y: 410.0,
        w: 620.0,
        h: 240.0,
        xr: Range::from_zero(window, 8.0),
        yr: Range::counts(
            f.subnets.iter().flat_map(|s| {
                s.window
                    .series
                    .iter()
                    .map(|p| f64::from(p.2))
                    .chain(s.window.fragmented.iter().map(|x| f64::from(x.free_blocks)))
            }),
            5.0,
        ),
    };
    churn(&mut doc, f, &bottom);
    doc.finish(960.0, 720.0)
}

/// The top panel.
fn growth(doc: &mut Doc, f: &Forecast, p: &Panel) {
    p.axes(
        doc,
        &format!(
            "{}: addresses in use under growth (grey: usable addresses)",
            f.cluster
        ),
        "days from now",
    );
    let usable = grouped(&f.subnets, |s| s.usable);
    for (u, _) in &usable {
        let y = f64::from(*u);
        p.polyline(doc, &[(p.xr.lo, y), (p.xr.hi, y)], "#888", 1.5, "6,4");
    }
    for (i, s) in f.subnets.iter().enumerate() {
        let pts: Vec<(f64, f64)> = s
            .growth_series
            .iter()
            .map(|(d, u)| (f64::from(*d), f64::from(*u)))
            .collect();
        p.series(doc, &pts, i);
    }
    let mut points = Vec::new();
    for (i, s) in f.subnets.iter().enumerate() {
        if let Some(d) = s.days_to_exhaustion {
            let (cx, cy) = (p.px(f64::from(d)), p.py(f64::from(s.usable)));
            // Markers at (almost) the same place shrink, so that each stays visible as a ring.
            let near = points
                .iter()
                .filter(|(_, _, _, px, py): &&(usize, _, u32, f64, f64)| {
                    (px - cx).hypot(py - cy) < 12.0
                })
                .count();
            #[expect(clippy::cast_precision_loss, reason = "a handful of markers")]
            let radius = (7.0 - 2.0 * near as f64).max(2.0);
            let _ = writeln!(
                doc.shapes,
                r##"<circle cx="{cx:.1}" cy="{cy:.1}" r="{radius}" fill="{}" stroke="#000"/>"##,
                color(i)
            );
            doc.avoid(Rect::around(cx, cy, 8.0));
            points.push((i, s, d, cx, cy));
        }
    }
    for (u, ids) in &usable {
        let who = if ids.len() == f.subnets.len() && ids.len() > 1 {
            "every subnet".to_owned()
        } else {
            ids.join(", ")
        };
        let text = Text::new(0.0, 0.0, 11.0, format!("usable: {u} ({who})")).fill("#555");
        doc.label(&text, p.x, p.py(f64::from(*u)), &p.area());
    }
    for (i, s, d, x, y) in points {
        let text = Text::new(0.0, 0.0, 12.0, format!("{} runs out: day {d}", s.id)).fill(color(i));
        doc.label(&text, x, y, &p.area());
    }
}

/// The bottom panel.
fn churn(doc: &mut Doc, f: &Forecast, p: &Panel) {
    p.axes(
        doc,
        "churn window: free /28s (triangles: /28s ran out while addresses remained)",
        "hours",
    );
    for (i, s) in f.subnets.iter().enumerate() {
        let pts: Vec<(f64, f64)> = s
            .window
            .series
            .iter()
            .map(|(m, _, b)| (hours(*m), f64::from(*b)))
            .collect();
        p.series(doc, &pts, i);
    }
    if f.subnets
        .iter()
        .all(|s| s.window.series.iter().all(|p| p.2 == 0))
    {
        let text = Text::new(
            0.0,
            0.0,
            12.0,
            "no free /28 in any subnet during the window",
        );
        doc.label(&text, p.x, p.py(0.0), &p.area());
    }
    let mut marks = Vec::new();
    for (i, s) in f.subnets.iter().enumerate() {
        if let Some(x) = &s.window.fragmented {
            let hx = p.px(hours(x.minute).min(p.xr.hi));
            let hy = p.py(f64::from(x.free_blocks));
            let _ = writeln!(
                doc.shapes,
                r##"<path d="M{:.1},{:.1} L{:.1},{:.1} L{:.1},{:.1} Z" fill="{}" stroke="#000"/>"##,
                hx,
                hy - 8.0,
                hx - 7.0,
                hy + 5.0,
                hx + 7.0,
                hy + 5.0,
                color(i)
            );
            doc.avoid(Rect::around(hx, hy, 9.0));
            marks.push((i, s, x, hx, hy));
        }
    }
    for (i, s, x, hx, hy) in marks {
        let text = Text::new(
            0.0,
            0.0,
            12.0,
            format!(
                "{}: no /28 at {:.1} h, {} addresses free",
                s.id,
                hours(x.minute),
                x.free_addresses
            ),
        )
        .fill(color(i));
        doc.label(&text, hx, hy, &p.area());
    }
}

fn class_color(c: BlockClass) -> &'static str {
    match c {
        BlockClass::Free => "#cfeccf",
        BlockClass::Partial => "#f2b134",
        BlockClass::Full => "#d1495b",
        BlockClass::Prefix => "#3b82c4",
        BlockClass::Reserved => "#9e9e9e",
    }
}

/// The /28 maps, one grid per subnet (64 blocks a row, lowest address top left). The canvas
/// widens for a subnet's heading that is longer than its grid.
pub fn block_maps(maps: &[BlockMap]) -> String {
    const PER_ROW: usize = 64;
    const CELL: f64 = 11.0;
    let mut doc = Doc::default();
    for (i, (c, name)) in [
        (BlockClass::Free, "free /28"),
        (BlockClass::Partial, "partly used"),
        (BlockClass::Full, "full"),
        (BlockClass::Prefix, "delegated prefix"),
        (BlockClass::Reserved, "reserved"),
    ]
    .iter()
    .enumerate()
    {
        #[expect(clippy::cast_precision_loss, reason = "five entries")]
        let x = 20.0 + 140.0 * i as f64;
        let _ = writeln!(
            doc.shapes,
            r#"<rect x="{x:.1}" y="14" width="12" height="12" fill="{}"/>"#,
            class_color(*c),
        );
        doc.text(Text::new(x + 16.0, 25.0, 12.0, *name));
    }
    let mut y = 50.0;
    for m in maps {
        doc.text(
            Text::new(
                20.0,
                y,
                14.0,
                format!(
                    "{} {} ({}): {} free /28s, fragmentation {:.2} ({})",
                    m.id, m.stats.cidr, m.az, m.counts.free, m.stats.fragmentation, m.band
                ),
            )
            .bold(),
        );
        y += 10.0;
        for (i, b) in m.blocks.iter().enumerate() {
            #[expect(clippy::cast_precision_loss, reason = "block indices below 4096")]
            let (col, row) = ((i % PER_ROW) as f64, (i / PER_ROW) as f64);
            let _ = writeln!(
                doc.shapes,
                r#"<rect x="{:.1}" y="{:.1}" width="{:.1}" height="{:.1}" fill="{}"><title>{} {:?} ({} used)</title></rect>"#,
                20.0 + col * CELL,
                y + row * CELL,
                CELL - 1.0,
                CELL - 1.0,
                class_color(b.class),
                b.cidr,
                b.class,
                b.used
            );
        }
        #[expect(clippy::cast_precision_loss, reason = "block counts below 4096")]
        let rows = m.blocks.len().div_ceil(PER_ROW) as f64;
        y += rows * CELL + 40.0;
    }
    doc.finish(20.0 + CELL * 64.0 + 20.0, y.round())
}
