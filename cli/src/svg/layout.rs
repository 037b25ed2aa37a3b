//! Text boxes without a font engine, and a pass that keeps labels off each other.
//!
//! A text's box is estimated from its font size and character count: [`CHAR_EM`] (or
//! [`BOLD_CHAR_EM`]) ems per character wide, [`ASCENT_EM`] above the baseline and
//! [`DESCENT_EM`] below it. The factors cover DejaVu Sans and Liberation Sans (what
//! `sans-serif` resolves to on Linux): their digits are 0.55–0.64 em wide (0.70 bold) and most
//! lower-case letters narrower. `cli/tests/svg_layout.rs` measures with the same factors.

use std::fmt::Write as _;

/// Width of one character of regular text, in ems.
pub const CHAR_EM: f64 = 0.64;
/// Width of one character of bold text, in ems.
pub const BOLD_CHAR_EM: f64 = 0.70;
/// Height above the baseline, in ems.
pub const ASCENT_EM: f64 = 0.93;
/// Depth below the baseline, in ems.
pub const DESCENT_EM: f64 = 0.24;

pub fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// An axis-aligned box.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rect {
    pub x0: f64,
    pub y0: f64,
    pub x1: f64,
    pub y1: f64,
}

impl Rect {
    pub fn intersects(&self, o: &Rect) -> bool {
        self.x0 < o.x1 && o.x0 < self.x1 && self.y0 < o.y1 && o.y0 < self.y1
    }

    pub fn contains(&self, o: &Rect) -> bool {
        self.x0 <= o.x0 && o.x1 <= self.x1 && self.y0 <= o.y0 && o.y1 <= self.y1
    }

    /// A box around a point.
    pub fn around(x: f64, y: f64, r: f64) -> Self {
        Self {
            x0: x - r,
            y0: y - r,
            x1: x + r,
            y1: y + r,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Anchor {
    Start,
    Middle,
    End,
}

/// One `<text>` element.
#[derive(Debug, Clone)]
pub struct Text {
    pub x: f64,
    pub y: f64,
    pub size: f64,
    pub bold: bool,
    pub anchor: Anchor,
    pub fill: &'static str,
    pub content: String,
}

impl Text {
    pub fn new(x: f64, y: f64, size: f64, content: impl Into<String>) -> Self {
        Self {
            x,
            y,
            size,
            bold: false,
            anchor: Anchor::Start,
            fill: "#000",
            content: content.into(),
        }
    }

    #[must_use]
    pub fn bold(mut self) -> Self {
        self.bold = true;
        self
    }

    #[must_use]
    pub fn anchor(mut self, a: Anchor) -> Self {
        self.anchor = a;
        self
    }

    #[must_use]
    pub fn fill(mut self, c: &'static str) -> Self {
        self.fill = c;
        self
    }

    /// The estimated width (see the module's documentation).
    pub fn width(&self) -> f64 {
        let em = if self.bold { BOLD_CHAR_EM } else { CHAR_EM };
        #[expect(clippy::cast_precision_loss, reason = "labels are short")]
        let n = self.content.chars().count() as f64;
        n * self.size * em
    }

    /// The estimated box.
    pub fn bbox(&self) -> Rect {
        let w = self.width();
        let x0 = match self.anchor {
            Anchor::Start => self.x,
            Anchor::Middle => self.x - w / 2.0,
            Anchor::End => self.x - w,
        };
        Rect {
            x0,
            y0: self.y - self.size * ASCENT_EM,
            x1: x0 + w,
            y1: self.y + self.size * DESCENT_EM,
        }
    }

    fn write(&self, out: &mut String, halo: bool) {
        let anchor = match self.anchor {
            Anchor::Start => "",
            Anchor::Middle => r#" text-anchor="middle""#,
            Anchor::End => r#" text-anchor="end""#,
        };
        let weight = if self.bold {
            r#" font-weight="bold""#
        } else {
            ""
        };
        let fill = if self.fill == "#000" {
            String::new()
        } else {
            format!(r#" fill="{}""#, self.fill)
        };
        let halo = if halo {
            r##" stroke="#fff" stroke-width="3" paint-order="stroke""##
        } else {
            ""
        };
        let _ = writeln!(
            out,
            r#"<text x="{:.1}" y="{:.1}" font-size="{}"{weight}{anchor}{fill}{halo}>{}</text>"#,
            self.x,
            self.y,
            self.size,
            esc(&self.content)
        );
    }
}

/// An SVG document being laid out: shapes first, texts on top; the canvas grows to hold every
/// text.
#[derive(Default)]
pub struct Doc {
    pub shapes: String,
    texts: Vec<(Text, bool)>,
    obstacles: Vec<Rect>,
}

impl Doc {
    /// A text at the place it was given (titles, ticks, legends: laid out by hand).
    pub fn text(&mut self, t: Text) {
        self.texts.push((t, false));
    }

    /// Something labels should not cover (markers).
    pub fn avoid(&mut self, r: Rect) {
        self.obstacles.push(r);
    }

    fn free(&self, b: &Rect, obstacles: bool) -> bool {
        self.texts.iter().all(|(t, _)| !t.bbox().intersects(b))
            && (!obstacles || self.obstacles.iter().all(|o| !o.intersects(b)))
    }

    /// A label for the point (`px`, `py`): above right of it, else above left, else stacked a
    /// line further up or down at a time until its box meets no other text and no marker
    /// inside `area`. A label that had to move gets a leader line to its point.
    pub fn label(&mut self, text: &Text, px: f64, py: f64, area: &Rect) {
        const GAP: f64 = 9.0;
        let step = text.size * (ASCENT_EM + DESCENT_EM) + 2.0;
        let at = |k: i32, left: bool| {
            let dy = f64::from(k) * step;
            let mut c = text.clone();
            c.y = py - GAP + dy;
            if left {
                c.x = px - GAP;
                c.anchor = Anchor::End;
            } else {
                c.x = px + GAP;
                c.anchor = Anchor::Start;
            }
            c
        };
        let candidates = (0..200).flat_map(|k| {
            let ks = if k == 0 { vec![0] } else { vec![-k, k] };
            ks.into_iter()
                .flat_map(move |k| [(k, false), (k, true)])
                .map(move |(k, left)| (k, at(k, left)))
        });
        let fits = |c: &Text, obstacles: bool, bounded: bool| {
            let b = c.bbox();
            (!bounded || area.contains(&b)) && self.free(&b, obstacles)
        };
        let chosen = candidates
            .clone()
            .take(80)
            .find(|(_, c)| fits(c, true, true))
            .or_else(|| {
                candidates
                    .clone()
                    .take(80)
                    .find(|(_, c)| fits(c, false, true))
            })
            .or_else(|| {
                candidates.clone().find(|(_, c)| {
                    c.bbox().x0 >= 0.0 && c.bbox().y0 >= 0.0 && fits(c, false, false)
                })
            });
        let (moved, placed) = chosen.unwrap_or_else(|| (0, at(0, false)));
        if moved != 0 {
            let bbox = placed.bbox();
            let end = if placed.anchor == Anchor::End {
                bbox.x1
            } else {
                bbox.x0
            };
            let _ = writeln!(
                self.shapes,
                r#"<line x1="{px:.1}" y1="{py:.1}" x2="{end:.1}" y2="{:.1}" stroke="{}" stroke-width="0.8"/>"#,
                f64::midpoint(bbox.y0, bbox.y1),
                placed.fill
            );
        }
        self.texts.push((placed, true));
    }

    /// The document: at least `min_w` × `min_h`, wider or taller when a text needs it.
    pub fn finish(self, min_w: f64, min_h: f64) -> String {
        let (mut w, mut h) = (min_w, min_h);
        for (t, _) in &self.texts {
            let b = t.bbox();
            w = w.max((b.x1 + 12.0).ceil());
            h = h.max((b.y1 + 12.0).ceil());
        }
        let mut out = format!(
            r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" font-family="sans-serif">
<rect width="100%" height="100%" fill="white"/>
"#
        );
        out.push_str(&self.shapes);
        for (t, halo) in &self.texts {
            t.write(&mut out, *halo);
        }
        out.push_str("</svg>\n");
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn boxes_follow_the_anchor() {
        let t = Text::new(100.0, 50.0, 10.0, "abcd");
        let w = 4.0 * 10.0 * CHAR_EM;
        assert!((t.bbox().x1 - (100.0 + w)).abs() < 1e-9);
        let e = t.clone().anchor(Anchor::End).bbox();
        assert!((e.x0 - (100.0 - w)).abs() < 1e-9);
        let m = t.anchor(Anchor::Middle).bbox();
        assert!((m.x0 + m.x1 - 200.0).abs() < 1e-9);
    }

    #[test]
    fn labels_at_one_point_are_stacked() {
        let mut doc = Doc::default();
        let area = Rect {
            x0: 0.0,
            y0: 0.0,
            x1: 400.0,
            y1: 300.0,
        };
        for i in 0..5 {
            doc.label(
                &Text::new(0.0, 0.0, 12.0, format!("label {i}")),
                200.0,
                150.0,
                &area,
            );
        }
        let boxes: Vec<Rect> = doc.texts.iter().map(|(t, _)| t.bbox()).collect();
        for (i, a) in boxes.iter().enumerate() {
            assert!(area.contains(a), "{a:?}");
            for b in &boxes[i + 1..] {
                assert!(!a.intersects(b), "{a:?} {b:?}");
            }
        }
        assert!(
            doc.shapes.contains("<line"),
            "moved labels get leader lines"
        );
    }

    #[test]
    fn the_canvas_grows_to_hold_its_texts() {
        let mut doc = Doc::default();
        doc.text(Text::new(90.0, 10.0, 10.0, "x".repeat(20)));
        let svg = doc.finish(100.0, 100.0);
        let w = (90.0 + 20.0 * 10.0 * CHAR_EM + 12.0_f64).ceil();
        assert!(svg.contains(&format!(r#"width="{w}""#)), "{svg}");
        assert!(svg.contains(r#"height="100""#));
    }

    #[test]
    fn text_is_escaped() {
        assert_eq!(esc("a<b>&\""), "a&lt;b&gt;&amp;&quot;");
    }
}
