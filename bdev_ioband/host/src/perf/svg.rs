//! A small SVG writer for the benchmark report: line charts (share over time, and curves of
//! a few marked points) and bar charts (IOPS of ioband against passthrough). Plain strings, no dependency; text is
//! XML-escaped and every number is finite, so the output is well-formed SVG 1.1.

use std::fmt::Write as _;

const W: f64 = 760.0;
const H: f64 = 420.0;
const LEFT: f64 = 80.0;
const RIGHT: f64 = 190.0;
const TOP: f64 = 40.0;
const BOTTOM: f64 = 56.0;

/// Solid series of at most this many points get a marker on each.
const MARKED_POINTS: usize = 12;

/// Colours cycled over series and bars.
const PALETTE: &[&str] = &[
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
    "#bcbd22", "#17becf",
];

/// Escapes text for XML content and attributes.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c if (c as u32) < 0x20 && c != '\n' && c != '\t' => {}
            c => out.push(c),
        }
    }
    out
}

fn finite(v: f64) -> f64 {
    if v.is_finite() {
        v
    } else {
        0.0
    }
}

/// A named series of (x, y) points.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    /// Legend text.
    pub name: String,
    /// Points, in x order.
    pub points: Vec<(f64, f64)>,
    /// Draw dashed (for reference lines such as a configured share).
    pub dashed: bool,
}

/// "Nice" upper bound for an axis.
fn nice_max(v: f64) -> f64 {
    if v <= 0.0 || !v.is_finite() {
        return 1.0;
    }
    let mag = 10f64.powf(v.log10().floor());
    for m in [1.0, 2.0, 2.5, 5.0, 10.0] {
        if v <= m * mag {
            return m * mag;
        }
    }
    10.0 * mag
}

fn fmt_num(v: f64) -> String {
    let a = v.abs();
    if a >= 1e6 {
        format!("{:.1}M", v / 1e6)
    } else if a >= 1e4 {
        format!("{:.0}k", v / 1e3)
    } else if a >= 100.0 || v == v.trunc() {
        format!("{v:.0}")
    } else {
        format!("{v:.2}")
    }
}

fn frame(out: &mut String, title: &str, x_label: &str, y_label: &str) {
    let _ = write!(
        out,
        r##"<?xml version="1.0" encoding="UTF-8"?>
<svg xmlns="http://www.w3.org/2000/svg" version="1.1" width="{W}" height="{H}" viewBox="0 0 {W} {H}" font-family="sans-serif" font-size="12">
<rect x="0" y="0" width="{W}" height="{H}" fill="#ffffff"/>
<text x="{}" y="22" text-anchor="middle" font-size="15">{}</text>
<text x="{}" y="{}" text-anchor="middle">{}</text>
<text x="18" y="{}" text-anchor="middle" transform="rotate(-90 18 {})">{}</text>
"##,
        (LEFT + W - RIGHT) / 2.0,
        escape(title),
        (LEFT + W - RIGHT) / 2.0,
        H - 12.0,
        escape(x_label),
        (TOP + H - BOTTOM) / 2.0,
        (TOP + H - BOTTOM) / 2.0,
        escape(y_label),
    );
}

fn y_axis(out: &mut String, y_max: f64) {
    let plot_h = H - TOP - BOTTOM;
    for i in 0..=5 {
        let v = y_max * f64::from(i) / 5.0;
        let y = TOP + plot_h - plot_h * f64::from(i) / 5.0;
        let _ = writeln!(
            out,
            r##"<line x1="{LEFT}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="#dddddd"/><text x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"##,
            W - RIGHT,
            LEFT - 6.0,
            y + 4.0,
            escape(&fmt_num(v))
        );
    }
    let _ = writeln!(
        out,
        r##"<line x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{:.1}" stroke="#000000"/><line x1="{LEFT}" y1="{:.1}" x2="{:.1}" y2="{:.1}" stroke="#000000"/>"##,
        H - BOTTOM,
        H - BOTTOM,
        W - RIGHT,
        H - BOTTOM
    );
}

/// A line chart of `series`; `y_max` fixes the y range (else it fits the data).
pub fn line_chart(
    title: &str,
    x_label: &str,
    y_label: &str,
    series: &[Series],
    y_max: Option<f64>,
) -> String {
    let mut out = String::new();
    frame(&mut out, title, x_label, y_label);
    let pts = || series.iter().flat_map(|s| s.points.iter());
    let x_min = pts().map(|p| finite(p.0)).fold(f64::INFINITY, f64::min);
    let x_max = pts().map(|p| finite(p.0)).fold(f64::NEG_INFINITY, f64::max);
    let (x_min, x_max) = if x_min.is_finite() && x_max > x_min {
        (x_min, x_max)
    } else {
        (0.0, 1.0)
    };
    let y_top = y_max.unwrap_or_else(|| nice_max(pts().map(|p| finite(p.1)).fold(0.0, f64::max)));
    let plot_w = W - LEFT - RIGHT;
    let plot_h = H - TOP - BOTTOM;
    y_axis(&mut out, y_top);
    for i in 0..=5 {
        let v = x_min + (x_max - x_min) * f64::from(i) / 5.0;
        let x = LEFT + plot_w * f64::from(i) / 5.0;
        let _ = writeln!(
            out,
            r##"<text x="{x:.1}" y="{:.1}" text-anchor="middle">{}</text>"##,
            H - BOTTOM + 16.0,
            escape(&fmt_num(v))
        );
    }
    let sx = |x: f64| LEFT + plot_w * (finite(x) - x_min) / (x_max - x_min);
    let sy = |y: f64| TOP + plot_h - plot_h * (finite(y) / y_top).clamp(0.0, 1.05);
    // A dashed series takes the colour of the solid one at its rank, so that a group's
    // configured line matches its achieved one when both lists are in the same order.
    let (mut solid, mut dashed) = (0usize, 0usize);
    for (i, s) in series.iter().enumerate() {
        let rank = if s.dashed { &mut dashed } else { &mut solid };
        let colour = PALETTE[*rank % PALETTE.len()];
        *rank += 1;
        let path: Vec<String> = s
            .points
            .iter()
            .map(|&(x, y)| format!("{:.1},{:.1}", sx(x), sy(y)))
            .collect();
        let dash = if s.dashed {
            r#" stroke-dasharray="5,4""#
        } else {
            ""
        };
        if !path.is_empty() {
            let _ = writeln!(
                out,
                r#"<polyline fill="none" stroke="{colour}" stroke-width="1.6"{dash} points="{}"/>"#,
                path.join(" ")
            );
        }
        // A short solid series (a few measured points) gets a marker on each point, so
        // that a single point shows.
        if !s.dashed && s.points.len() <= MARKED_POINTS {
            for &(x, y) in &s.points {
                let _ = writeln!(
                    out,
                    r#"<circle cx="{:.1}" cy="{:.1}" r="3.5" fill="{colour}"/>"#,
                    sx(x),
                    sy(y)
                );
            }
        }
        if i < 20 {
            let ly = TOP + 14.0 * i as f64 + 6.0;
            let _ = writeln!(
                out,
                r#"<line x1="{:.1}" y1="{ly:.1}" x2="{:.1}" y2="{ly:.1}" stroke="{colour}" stroke-width="2"{dash}/><text x="{:.1}" y="{:.1}">{}</text>"#,
                W - RIGHT + 10.0,
                W - RIGHT + 30.0,
                W - RIGHT + 34.0,
                ly + 4.0,
                escape(&s.name)
            );
        } else if i == 20 {
            let _ = writeln!(
                out,
                r#"<text x="{:.1}" y="{:.1}">(+{} more)</text>"#,
                W - RIGHT + 10.0,
                TOP + 14.0 * 20.0 + 10.0,
                series.len() - 20
            );
        }
    }
    out.push_str("</svg>\n");
    out
}

/// A bar chart of labelled values.
pub fn bar_chart(title: &str, y_label: &str, bars: &[(String, f64)]) -> String {
    let mut out = String::new();
    frame(&mut out, title, "", y_label);
    let y_top = nice_max(bars.iter().map(|b| finite(b.1)).fold(0.0, f64::max));
    y_axis(&mut out, y_top);
    let plot_w = W - LEFT - RIGHT;
    let plot_h = H - TOP - BOTTOM;
    let n = bars.len().max(1) as f64;
    let slot = plot_w / n;
    for (i, (label, v)) in bars.iter().enumerate() {
        let h = plot_h * (finite(*v) / y_top).clamp(0.0, 1.0);
        let x = LEFT + slot * i as f64 + slot * 0.15;
        let _ = writeln!(
            out,
            r#"<rect x="{x:.1}" y="{:.1}" width="{:.1}" height="{h:.1}" fill="{}"/><text x="{:.1}" y="{:.1}" text-anchor="middle">{}</text><text x="{:.1}" y="{:.1}" text-anchor="middle">{}</text>"#,
            TOP + plot_h - h,
            slot * 0.7,
            PALETTE[i % PALETTE.len()],
            x + slot * 0.35,
            H - BOTTOM + 16.0,
            escape(label),
            x + slot * 0.35,
            TOP + plot_h - h - 4.0,
            escape(&fmt_num(*v))
        );
    }
    out.push_str("</svg>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes() {
        assert_eq!(escape("a<b & \"c\"'"), "a&lt;b &amp; &quot;c&quot;&apos;");
        assert_eq!(nice_max(0.0), 1.0);
        assert_eq!(nice_max(7.0), 10.0);
        assert_eq!(nice_max(0.3), 0.5);
        assert_eq!(fmt_num(2_500_000.0), "2.5M");
    }
}
