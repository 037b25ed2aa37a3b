//! A line chart's panel: scales, ticks, axes and strokes.

use std::fmt::Write as _;

use super::layout::{Anchor, Doc, Rect, Text};

pub const PALETTE: [&str; 8] = [
    "#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#8c564b", "#e377c2",
];

/// Series `i`'s stroke: width and dash pattern. Widths shrink (5, 3, 1.25) and series are drawn
/// in order, so lines that coincide show as a wide band with narrower lines inside it; beyond
/// three series dash patterns tell them apart as well.
pub fn stroke(i: usize) -> (f64, &'static str) {
    const WIDTHS: [f64; 3] = [5.0, 3.0, 1.25];
    const DASHES: [&str; 3] = ["", "10,5", "3,3"];
    (WIDTHS[i % 3], DASHES[(i / 3) % 3])
}

/// Pixels between the frame and the highest or lowest value.
const INSET: f64 = 6.0;

/// Series `i`'s colour.
pub fn color(i: usize) -> &'static str {
    PALETTE[i % PALETTE.len()]
}

/// A "nice" tick step (1, 2 or 5 × 10^k) for about `n` ticks over `span`.
pub fn tick_step(span: f64, n: f64) -> f64 {
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

/// An axis range with its tick step.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Range {
    pub lo: f64,
    pub hi: f64,
    pub step: f64,
}

impl Range {
    /// From 0 to `hi` (time axes).
    pub fn from_zero(hi: f64, ticks: f64) -> Self {
        let hi = hi.max(1e-9);
        Self {
            lo: 0.0,
            hi,
            step: tick_step(hi, ticks),
        }
    }

    /// What the counts in `values` span, padded by 5% (at least 1) each side, never below 0, and
    /// widened to whole integer ticks: a line that varies little is not flattened against 0.
    pub fn counts(values: impl IntoIterator<Item = f64>, ticks: f64) -> Self {
        let (lo, hi) = values
            .into_iter()
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
                (lo.min(v), hi.max(v))
            });
        let (lo, hi) = if lo.is_finite() { (lo, hi) } else { (0.0, 1.0) };
        let pad = ((hi - lo) * 0.05).max(1.0);
        let (lo, hi) = ((lo - pad).max(0.0), hi + pad);
        let step = tick_step(hi - lo, ticks).max(1.0);
        Self {
            lo: (lo / step).floor() * step,
            hi: (hi / step).ceil() * step,
            step,
        }
    }

    fn ticks(&self) -> impl Iterator<Item = f64> + '_ {
        let first = (self.lo / self.step).ceil();
        (0..)
            .map(move |k| (first + f64::from(k)) * self.step)
            .take_while(|v| *v <= self.hi + self.step * 1e-6)
    }

    fn format(&self, v: f64) -> String {
        if self.step >= 1.0 {
            thousands(v)
        } else {
            #[expect(
                clippy::cast_possible_truncation,
                clippy::cast_sign_loss,
                reason = "a handful of decimals"
            )]
            let decimals = (-self.step.log10()).ceil() as usize;
            format!("{v:.decimals$}")
        }
    }
}

fn thousands(v: f64) -> String {
    let digits = format!("{:.0}", v.abs());
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    if v < -0.5 { format!("-{out}") } else { out }
}

pub struct Panel {
    pub x: f64,
    pub y: f64,
    pub w: f64,
    pub h: f64,
    pub xr: Range,
    pub yr: Range,
}

impl Panel {
    pub fn px(&self, v: f64) -> f64 {
        self.x + self.w * (v - self.xr.lo) / (self.xr.hi - self.xr.lo).max(1e-9)
    }

    /// Values sit [`INSET`] inside the frame: a line at the range's end stays off the border.
    pub fn py(&self, v: f64) -> f64 {
        let h = self.h - 2.0 * INSET;
        self.y + INSET + h - h * (v - self.yr.lo) / (self.yr.hi - self.yr.lo).max(1e-9)
    }

    /// The plot area with room around it for labels.
    pub fn area(&self) -> Rect {
        Rect {
            x0: self.x + 2.0,
            y0: self.y + 2.0,
            x1: self.x + self.w - 2.0,
            y1: self.y + self.h - 2.0,
        }
    }

    pub fn axes(&self, doc: &mut Doc, title: &str, x_label: &str) {
        doc.text(Text::new(self.x, self.y - 14.0, 14.0, title).bold());
        let _ = writeln!(
            doc.shapes,
            r##"<rect x="{:.1}" y="{:.1}" width="{:.1}" height="{:.1}" fill="none" stroke="#444"/>"##,
            self.x, self.y, self.w, self.h
        );
        for v in self.yr.ticks() {
            let y = self.py(v);
            let _ = writeln!(
                doc.shapes,
                r##"<line x1="{:.1}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="#ddd"/>"##,
                self.x,
                self.x + self.w,
            );
            doc.text(Text::new(self.x - 6.0, y + 4.0, 11.0, self.yr.format(v)).anchor(Anchor::End));
        }
        for v in self.xr.ticks() {
            let x = self.px(v);
            let _ = writeln!(
                doc.shapes,
                r##"<line x1="{x:.1}" y1="{:.1}" x2="{x:.1}" y2="{:.1}" stroke="#444"/>"##,
                self.y + self.h,
                self.y + self.h + 4.0,
            );
            doc.text(
                Text::new(x, self.y + self.h + 16.0, 11.0, self.xr.format(v))
                    .anchor(Anchor::Middle),
            );
        }
        doc.text(
            Text::new(self.x + self.w / 2.0, self.y + self.h + 34.0, 12.0, x_label)
                .anchor(Anchor::Middle),
        );
    }

    /// Series `i`'s line through `points` (data coordinates).
    pub fn series(&self, doc: &mut Doc, points: &[(f64, f64)], i: usize) {
        let (width, dash) = stroke(i);
        self.polyline(doc, points, color(i), width, dash);
    }

    pub fn polyline(
        &self,
        doc: &mut Doc,
        points: &[(f64, f64)],
        color: &str,
        width: f64,
        dash: &str,
    ) {
        let pts: Vec<String> = points
            .iter()
            .map(|(x, y)| format!("{:.1},{:.1}", self.px(*x), self.py(*y)))
            .collect();
        let dash = if dash.is_empty() {
            String::new()
        } else {
            format!(r#" stroke-dasharray="{dash}""#)
        };
        let _ = writeln!(
            doc.shapes,
            r#"<polyline points="{}" fill="none" stroke="{color}" stroke-width="{width}"{dash} stroke-linejoin="round"/>"#,
            pts.join(" ")
        );
    }
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
    fn count_ranges_follow_the_data() {
        let r = Range::counts([2610.0, 10875.0, 8187.0], 5.0);
        assert_eq!((r.lo, r.hi, r.step), (2000.0, 12000.0, 2000.0));
        let r = Range::counts([7.0, 13.0], 5.0);
        assert_eq!((r.lo, r.hi, r.step), (6.0, 14.0, 2.0));
        // Constant or empty: a unit range, never below zero.
        let r = Range::counts([0.0, 0.0], 5.0);
        assert_eq!((r.lo, r.hi, r.step), (0.0, 1.0, 1.0));
        let r = Range::counts([], 5.0);
        assert_eq!((r.lo, r.hi), (0.0, 2.0));
    }

    #[test]
    fn ticks_are_whole_multiples_and_formatted() {
        let r = Range::from_zero(1.0, 5.0);
        let labels: Vec<String> = r.ticks().map(|v| r.format(v)).collect();
        assert_eq!(labels, ["0.0", "0.2", "0.4", "0.6", "0.8", "1.0"]);
        let r = Range::counts([2610.0, 10875.0], 5.0);
        assert_eq!(r.format(12000.0), "12,000");
        assert_eq!(thousands(999.0), "999");
    }
}
