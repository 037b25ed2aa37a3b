//! Pictures as hand-written SVG (no plotting crate: two chart kinds do not justify one).
//! Deterministic output: the same forecast gives the same bytes.

use std::fmt::Write as _;

use capacity::blocks::{BlockClass, BlockMap};
use capacity::forecast::Forecast;

const PALETTE: [&str; 8] = [
    "#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#8c564b", "#e377c2",
];

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A "nice" tick step (1, 2 or 5 × 10^k) for about `n` ticks over `span`.
fn tick_step(span: f64, n: f64) -> f64 {
    if span <= 0.0 {
        return 1.0;
    }
    let raw = span / n;
    let mag = 10f64.powf(raw.log10().floor());
    let unit = raw / mag;
    let nice = if unit <= 1.0 {
        1.0
    } else if unit <= 2.0 {
        2.0
    } else if unit <= 5.0 {
        5.0
    } else {
        10.0
    };
    nice * mag
}

struct Panel {
    x: f64,
    y: f64,
    w: f64,
    h: f64,
    x_max: f64,
    y_max: f64,
}

impl Panel {
    fn px(&self, v: f64) -> f64 {
        self.x + self.w * (v / self.x_max.max(1e-9))
    }
    fn py(&self, v: f64) -> f64 {
        self.y + self.h - self.h * (v / self.y_max.max(1e-9))
    }

    fn axes(&self, out: &mut String, title: &str, x_label: &str) {
        let _ = writeln!(
            out,
            r#"<text x="{:.1}" y="{:.1}" font-size="14" font-weight="bold">{}</text>"#,
            self.x,
            self.y - 10.0,
            esc(title)
        );
        let _ = writeln!(
            out,
            r##"<rect x="{:.1}" y="{:.1}" width="{:.1}" height="{:.1}" fill="none" stroke="#444"/>"##,
            self.x, self.y, self.w, self.h
        );
        let ys = tick_step(self.y_max, 5.0);
        let mut v = 0.0;
        while v <= self.y_max + 1e-9 {
            let y = self.py(v);
            let _ = writeln!(
                out,
                r##"<line x1="{:.1}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="#ddd"/><text x="{:.1}" y="{:.1}" font-size="11" text-anchor="end">{v}</text>"##,
                self.x,
                self.x + self.w,
                self.x - 4.0,
                y + 4.0
            );
            v += ys;
        }
        let xs = tick_step(self.x_max, 8.0);
        let mut v = 0.0;
        while v <= self.x_max + 1e-9 {
            let x = self.px(v);
            let _ = writeln!(
                out,
                r##"<line x1="{x:.1}" y1="{:.1}" x2="{x:.1}" y2="{:.1}" stroke="#444"/><text x="{x:.1}" y="{:.1}" font-size="11" text-anchor="middle">{v}</text>"##,
                self.y + self.h,
                self.y + self.h + 4.0,
                self.y + self.h + 16.0
            );
            v += xs;
        }
        let _ = writeln!(
            out,
            r#"<text x="{:.1}" y="{:.1}" font-size="12" text-anchor="middle">{}</text>"#,
            self.x + self.w / 2.0,
            self.y + self.h + 32.0,
            esc(x_label)
        );
    }

    fn line(&self, out: &mut String, points: &[(f64, f64)], color: &str, dashed: bool) {
        let pts: Vec<String> = points
            .iter()
            .map(|(x, y)| format!("{:.1},{:.1}", self.px(*x), self.py(*y)))
            .collect();
        let dash = if dashed {
            r#" stroke-dasharray="6,4""#
        } else {
            ""
        };
        let _ = writeln!(
            out,
            r#"<polyline points="{}" fill="none" stroke="{color}" stroke-width="2"{dash}/>"#,
            pts.join(" ")
        );
    }
}

/// Addresses over time per subnet: growth over days with the exhaustion point (top), and the
/// churn window with the moment /28s ran out (bottom). Dashed lines: usable addresses.
#[expect(clippy::too_many_lines, reason = "two panels, drawn in order")]
pub fn forecast(f: &Forecast) -> String {
    let (width, height) = (960.0, 720.0);
    let mut out = format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" font-family="sans-serif">
<rect width="100%" height="100%" fill="white"/>
"#
    );
    let y_max = f
        .subnets
        .iter()
        .flat_map(|s| {
            s.growth_series
                .iter()
                .map(|p| f64::from(p.1))
                .chain([f64::from(s.usable)])
        })
        .fold(1.0, f64::max)
        * 1.05;
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
        x_max: days,
        y_max,
    };
    top.axes(
        &mut out,
        &format!("{}: addresses in use under growth", f.cluster),
        "days from now",
    );
    for (i, s) in f.subnets.iter().enumerate() {
        let color = PALETTE[i % PALETTE.len()];
        let pts: Vec<(f64, f64)> = s
            .growth_series
            .iter()
            .map(|(d, u)| (f64::from(*d), f64::from(*u)))
            .collect();
        top.line(&mut out, &pts, color, false);
        top.line(
            &mut out,
            &[(0.0, f64::from(s.usable)), (days, f64::from(s.usable))],
            color,
            true,
        );
        if let Some(d) = s.days_to_exhaustion {
            let (x, y) = (top.px(f64::from(d)), top.py(f64::from(s.usable)));
            let _ = writeln!(
                out,
                r##"<circle cx="{x:.1}" cy="{y:.1}" r="6" fill="{color}" stroke="#000"/><text x="{:.1}" y="{:.1}" font-size="12">{} runs out: day {d}</text>"##,
                x + 8.0,
                y - 8.0,
                esc(&s.id)
            );
        }
    }
    let hours = f.window_hours.max(1.0 / 12.0);
    let y2 = f
        .subnets
        .iter()
        .flat_map(|s| {
            s.window
                .series
                .iter()
                .map(|p| f64::from(p.1))
                .chain([f64::from(s.usable)])
        })
        .fold(1.0, f64::max)
        * 1.05;
    let bottom = Panel {
        x: 80.0,
        y: 400.0,
        w: 620.0,
        h: 240.0,
        x_max: hours,
        y_max: y2,
    };
    bottom.axes(
        &mut out,
        "churn window: addresses in use (triangles: /28s ran out while addresses remained)",
        "hours",
    );
    for (i, s) in f.subnets.iter().enumerate() {
        let color = PALETTE[i % PALETTE.len()];
        #[expect(clippy::cast_precision_loss, reason = "minutes of a window")]
        let pts: Vec<(f64, f64)> = s
            .window
            .series
            .iter()
            .map(|(m, u, _)| (*m as f64 / 60.0, f64::from(*u)))
            .collect();
        bottom.line(&mut out, &pts, color, false);
        bottom.line(
            &mut out,
            &[(0.0, f64::from(s.usable)), (hours, f64::from(s.usable))],
            color,
            true,
        );
        if let Some(x) = &s.window.fragmented {
            #[expect(clippy::cast_precision_loss, reason = "minutes of a window")]
            let hx = bottom.px(x.minute as f64 / 60.0);
            let used = f64::from(s.usable - x.free_addresses);
            let hy = bottom.py(used);
            let _ = writeln!(
                out,
                r##"<path d="M{:.1},{:.1} L{:.1},{:.1} L{:.1},{:.1} Z" fill="{color}" stroke="#000"/>"##,
                hx,
                hy - 8.0,
                hx - 7.0,
                hy + 5.0,
                hx + 7.0,
                hy + 5.0
            );
        }
    }
    // Legend.
    for (i, s) in f.subnets.iter().enumerate() {
        let color = PALETTE[i % PALETTE.len()];
        #[expect(clippy::cast_precision_loss, reason = "a handful of subnets")]
        let y = 60.0 + 20.0 * i as f64;
        let _ = writeln!(
            out,
            r#"<rect x="720" y="{:.1}" width="14" height="14" fill="{color}"/><text x="740" y="{:.1}" font-size="12">{} {} ({} usable)</text>"#,
            y - 11.0,
            y,
            esc(&s.id),
            s.cidr,
            s.usable
        );
    }
    out.push_str("</svg>\n");
    out
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

/// The /28 maps, one grid per subnet (64 blocks a row, lowest address top left).
pub fn block_maps(maps: &[BlockMap]) -> String {
    const PER_ROW: usize = 64;
    const CELL: f64 = 11.0;
    let mut body = String::new();
    let mut y = 50.0;
    for m in maps {
        let _ = writeln!(
            body,
            r#"<text x="20" y="{y:.1}" font-size="14" font-weight="bold">{} {} ({}): {} free /28s, fragmentation {:.2} ({})</text>"#,
            esc(&m.id),
            m.stats.cidr,
            esc(&m.az),
            m.counts.free,
            m.stats.fragmentation,
            m.band
        );
        y += 10.0;
        for (i, b) in m.blocks.iter().enumerate() {
            #[expect(clippy::cast_precision_loss, reason = "block indices below 4096")]
            let (col, row) = ((i % PER_ROW) as f64, (i / PER_ROW) as f64);
            let _ = writeln!(
                body,
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
    let mut legend = String::new();
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
            legend,
            r#"<rect x="{x:.1}" y="14" width="12" height="12" fill="{}"/><text x="{:.1}" y="25" font-size="12">{name}</text>"#,
            class_color(*c),
            x + 16.0
        );
    }
    let width = 20.0 + CELL * 64.0 + 20.0;
    format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{y:.0}" viewBox="0 0 {width} {y:.0}" font-family="sans-serif">
<rect width="100%" height="100%" fill="white"/>
{legend}{body}</svg>
"#
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tick_steps_to_one_two_five() {
        assert!((tick_step(100.0, 5.0) - 20.0).abs() < 1e-9);
        assert!((tick_step(730.0, 8.0) - 100.0).abs() < 1e-9);
        assert!((tick_step(7.0, 5.0) - 2.0).abs() < 1e-9);
        assert!((tick_step(0.0, 5.0) - 1.0).abs() < 1e-9);
    }

    #[test]
    fn text_is_escaped() {
        assert_eq!(esc("a<b>&\""), "a&lt;b&gt;&amp;&quot;");
    }
}
