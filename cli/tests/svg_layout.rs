//! The pictures read at a glance: for every worked example (docs/examples/*.yaml), the
//! forecast plot and the /28 map parse as SVG, every text lies inside the canvas, and no two
//! texts overlap.
//!
//! Text boxes are measured twice:
//! * estimated, with the factors the layout uses (`cli/src/svg/layout.rs`): width = characters ×
//!   font size × 0.64 (0.70 bold), 0.93 em above the baseline and 0.24 em below it;
//! * laid out by usvg with the machine's fonts, when it has any (usvg's text bounding box:
//!   glyph advances across, the font's ascent to descent up and down). Without a font usvg drops
//!   text, so that check is skipped with a note and the estimate stands alone.

use std::path::{Path, PathBuf};
use std::process::Command;

use quick_xml::events::{BytesStart, Event};

/// The layout's factors (`cli/src/svg/layout.rs`): keep them in step.
const CHAR_EM: f64 = 0.64;
const BOLD_CHAR_EM: f64 = 0.70;
const ASCENT_EM: f64 = 0.93;
const DESCENT_EM: f64 = 0.24;

#[derive(Debug, Clone, Copy)]
struct Box {
    x0: f64,
    y0: f64,
    x1: f64,
    y1: f64,
}

impl Box {
    fn overlaps(&self, o: &Box) -> bool {
        // Boxes that touch do not overlap; a hundredth of a pixel is rounding.
        let e = 0.01;
        self.x0 + e < o.x1 && o.x0 + e < self.x1 && self.y0 + e < o.y1 && o.y0 + e < self.y1
    }

    fn inside(&self, w: f64, h: f64) -> bool {
        self.x0 >= 0.0 && self.y0 >= 0.0 && self.x1 <= w && self.y1 <= h
    }
}

#[derive(Debug)]
struct Label {
    content: String,
    estimated: Box,
}

fn attr(e: &BytesStart<'_>, name: &str) -> Option<String> {
    e.try_get_attribute(name)
        .expect("attributes parse")
        .map(|a| a.unescape_value().expect("attribute value").into_owned())
}

fn num(e: &BytesStart<'_>, name: &str) -> f64 {
    attr(e, name)
        .unwrap_or_else(|| panic!("<text> without {name}"))
        .parse()
        .unwrap_or_else(|_| panic!("{name} is not a number"))
}

/// The canvas size and every `<text>` with its estimated box.
fn estimated(svg: &str) -> ((f64, f64), Vec<Label>) {
    let mut reader = quick_xml::Reader::from_str(svg);
    let mut canvas = None;
    let mut labels = Vec::new();
    let mut open: Option<(f64, f64, f64, bool, String)> = None;
    let mut content = String::new();
    loop {
        match reader.read_event().expect("well-formed XML") {
            Event::Start(e) if e.name().as_ref() == b"svg" => {
                canvas = Some((num(&e, "width"), num(&e, "height")));
            }
            Event::Start(e) if e.name().as_ref() == b"text" => {
                let size = num(&e, "font-size");
                let bold = attr(&e, "font-weight").is_some_and(|w| w == "bold");
                let anchor = attr(&e, "text-anchor").unwrap_or_else(|| "start".to_owned());
                open = Some((num(&e, "x"), num(&e, "y"), size, bold, anchor));
                content.clear();
            }
            Event::Text(t) if open.is_some() => {
                content.push_str(&t.decode().expect("utf-8"));
            }
            Event::GeneralRef(r) if open.is_some() => {
                let name = r.decode().expect("utf-8");
                content.push(match name.as_ref() {
                    "amp" => '&',
                    "lt" => '<',
                    "gt" => '>',
                    "quot" => '"',
                    "apos" => '\'',
                    other => panic!("entity {other}"),
                });
            }
            Event::End(e) if e.name().as_ref() == b"text" => {
                let (x, y, size, bold, anchor) = open.take().expect("a <text> is open");
                #[expect(clippy::cast_precision_loss, reason = "short labels")]
                let w = content.chars().count() as f64
                    * size
                    * if bold { BOLD_CHAR_EM } else { CHAR_EM };
                let x0 = match anchor.as_str() {
                    "middle" => x - w / 2.0,
                    "end" => x - w,
                    _ => x,
                };
                labels.push(Label {
                    content: content.clone(),
                    estimated: Box {
                        x0,
                        y0: y - size * ASCENT_EM,
                        x1: x0 + w,
                        y1: y + size * DESCENT_EM,
                    },
                });
            }
            Event::Eof => break,
            _ => {}
        }
    }
    (canvas.expect("an <svg> root"), labels)
}

/// usvg's text boxes after layout, in document order.
fn measured(tree: &usvg::Tree) -> Vec<Box> {
    fn walk(g: &usvg::Group, out: &mut Vec<Box>) {
        for n in g.children() {
            match n {
                usvg::Node::Group(g) => walk(g, out),
                usvg::Node::Text(t) => {
                    let r = t.abs_bounding_box();
                    out.push(Box {
                        x0: f64::from(r.left()),
                        y0: f64::from(r.top()),
                        x1: f64::from(r.right()),
                        y1: f64::from(r.bottom()),
                    });
                }
                _ => {}
            }
        }
    }
    let mut out = Vec::new();
    walk(tree.root(), &mut out);
    out
}

fn options() -> usvg::Options<'static> {
    let mut opt = usvg::Options::default();
    let db = opt.fontdb_mut();
    db.load_system_fonts();
    // `sans-serif` means Arial to usvg; use what Linux machines have instead.
    let family = ["DejaVu Sans", "Liberation Sans"]
        .into_iter()
        .find(|f| {
            db.faces()
                .any(|face| face.families.iter().any(|(name, _)| name == f))
        })
        .map(str::to_owned)
        .or_else(|| db.faces().next().map(|f| f.families[0].0.clone()));
    if let Some(family) = family {
        db.set_sans_serif_family(family);
    }
    opt
}

/// Everything wrong with one picture's text layout.
fn problems(name: &str, svg: &str, opt: &usvg::Options<'_>) -> Vec<String> {
    let tree = usvg::Tree::from_str(svg, opt).unwrap_or_else(|e| panic!("{name}: {e}"));
    let ((w, h), labels) = estimated(svg);
    assert!(!labels.is_empty(), "{name}: no text");
    let size = tree.size();
    assert_eq!(
        (f64::from(size.width()), f64::from(size.height())),
        (w, h),
        "{name}: usvg reads the canvas size"
    );
    let mut found = Vec::new();
    let mut check = |how: &str, boxes: &[Box]| {
        for (i, (l, b)) in labels.iter().zip(boxes).enumerate() {
            if !b.inside(w, h) {
                found.push(format!(
                    "{name} ({how}): {:?} leaves the {w}×{h} canvas: {b:?}",
                    l.content
                ));
            }
            for (m, c) in labels.iter().zip(boxes).skip(i + 1) {
                if b.overlaps(c) {
                    found.push(format!(
                        "{name} ({how}): {:?} overlaps {:?}",
                        l.content, m.content
                    ));
                }
            }
        }
    };
    let boxes: Vec<Box> = labels.iter().map(|l| l.estimated).collect();
    check("estimated", &boxes);
    if opt.fontdb.is_empty() {
        eprintln!("{name}: no font on this machine: text boxes are estimated only");
    } else {
        let real = measured(&tree);
        assert_eq!(real.len(), labels.len(), "{name}: usvg laid out every text");
        check("usvg", &real);
    }
    found
}

fn pictures() -> Vec<(String, String)> {
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/examples");
    let mut specs: Vec<PathBuf> = std::fs::read_dir(&examples)
        .expect("docs/examples")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    specs.sort();
    assert!(specs.len() >= 4, "the worked examples: {specs:?}");
    let dir = std::env::temp_dir().join(format!("eniplan-svg-layout-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut out = Vec::new();
    for spec in &specs {
        let stem = spec.file_stem().unwrap().to_string_lossy().into_owned();
        for (command, kind) in [("forecast", "forecast"), ("subnets", "map")] {
            let file = dir.join(format!("{stem}-{kind}.svg"));
            let status = Command::new(env!("CARGO_BIN_EXE_eniplan"))
                .arg(command)
                .arg(spec)
                .arg("--plot")
                .arg(&file)
                .output()
                .expect("eniplan runs")
                .status;
            assert!(status.success(), "{command} {}: {status}", spec.display());
            let svg = std::fs::read_to_string(&file).expect("the plot is written");
            out.push((format!("{stem} {kind}"), svg));
        }
    }
    std::fs::remove_dir_all(&dir).unwrap();
    out
}

#[test]
fn every_worked_example_plots_without_overlaps_or_overflow() {
    let opt = options();
    let found: Vec<String> = pictures()
        .iter()
        .flat_map(|(name, svg)| problems(name, svg, &opt))
        .collect();
    assert!(found.is_empty(), "{}", found.join("\n"));
}

#[test]
fn the_checks_catch_overlap_and_overflow() {
    let svg = r#"<svg xmlns="http://www.w3.org/2000/svg" width="100" height="50" viewBox="0 0 100 50" font-family="sans-serif">
<text x="10" y="20" font-size="12">subnet-a</text>
<text x="12" y="22" font-size="12">subnet-b</text>
<text x="90" y="40" font-size="12" text-anchor="start">too wide</text>
</svg>"#;
    let found = problems("made up", svg, &options());
    let estimated: Vec<&String> = found.iter().filter(|p| p.contains("estimated")).collect();
    assert_eq!(estimated.len(), 2, "{found:#?}");
    assert!(estimated[0].contains(r#""subnet-a" overlaps "subnet-b""#));
    assert!(estimated[1].contains(r#""too wide" leaves"#));
    if !options().fontdb.is_empty() {
        // usvg with real fonts finds the same two.
        assert_eq!(found.len(), 4, "{found:#?}");
    }
}
