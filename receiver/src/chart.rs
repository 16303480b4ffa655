//! The page's charts: data volume over time as an inline SVG (no JavaScript, no image
//! library: a few polylines). Labels are escaped here because the SVG is inserted into the
//! page unescaped.
#![forbid(unsafe_code)]

use std::fmt::Write;

/// One line of the chart: a database's data volume at points in time.
pub struct Series {
    pub label: String,
    /// (Unix seconds, bytes), oldest first.
    pub points: Vec<(i64, i64)>,
}

/// Most lines drawn, and most points per line (more would not be readable anyway).
pub const MAX_SERIES: usize = 10;
pub const MAX_POINTS: usize = 400;

const WIDTH: f64 = 760.0;
const HEIGHT: f64 = 280.0;
const LEFT: f64 = 80.0;
const RIGHT: f64 = 20.0;
const TOP: f64 = 20.0;
const BOTTOM: f64 = 40.0;
const COLOURS: [&str; MAX_SERIES] = [
    "#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22",
    "#17becf",
];

/// Bytes as a person reads them: `7.5 MiB`.
pub fn human_bytes(bytes: i64) -> String {
    let units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut value = bytes.max(0) as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < units.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", units[unit])
    }
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// The SVG of `series` (at most `MAX_SERIES`, each at most `MAX_POINTS` points used), with a
/// title for screen readers; a short text when there is nothing to draw.
pub fn volume_svg(title: &str, series: &[Series]) -> String {
    let series = &series[..series.len().min(MAX_SERIES)];
    let all = || series.iter().flat_map(|s| s.points.iter().take(MAX_POINTS));
    let (Some(t0), Some(t1)) = (all().map(|p| p.0).min(), all().map(|p| p.0).max()) else {
        return "<p class=\"empty\">No data volume reported yet.</p>".to_string();
    };
    let max_bytes = all().map(|p| p.1).max().unwrap_or(0).max(1);
    let span = (t1 - t0).max(1) as f64;
    let x = |t: i64| LEFT + (t - t0) as f64 / span * (WIDTH - LEFT - RIGHT);
    let y = |b: i64| TOP + (1.0 - b as f64 / max_bytes as f64) * (HEIGHT - TOP - BOTTOM);
    let mut svg = String::new();
    let _ = write!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" class="chart" role="img" viewBox="0 0 {WIDTH} {h}" width="{WIDTH}" height="{h}"><title>{}</title>"#,
        escape(title),
        h = HEIGHT + 20.0 * series.len() as f64,
    );
    // Axes, the largest value and the time span.
    let _ = write!(
        svg,
        r##"<g stroke="#999" stroke-width="1"><line x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{b}"/><line x1="{LEFT}" y1="{b}" x2="{r}" y2="{b}"/></g>"##,
        b = HEIGHT - BOTTOM,
        r = WIDTH - RIGHT,
    );
    let date = |t: i64| {
        chrono::DateTime::from_timestamp(t, 0)
            .map(|d| d.format("%Y-%m-%d %H:%M").to_string())
            .unwrap_or_default()
    };
    let _ = write!(
        svg,
        r##"<g font-size="12" font-family="sans-serif" fill="#333"><text x="{tx}" y="{ty}" text-anchor="end">{}</text><text x="{tx}" y="{b}" text-anchor="end">0</text><text x="{LEFT}" y="{d}">{}</text><text x="{r}" y="{d}" text-anchor="end">{}</text></g>"##,
        human_bytes(max_bytes),
        date(t0),
        date(t1),
        tx = LEFT - 6.0,
        ty = TOP + 4.0,
        b = HEIGHT - BOTTOM,
        r = WIDTH - RIGHT,
        d = HEIGHT - BOTTOM + 18.0,
    );
    for (i, s) in series.iter().enumerate() {
        let colour = COLOURS[i];
        let points: Vec<String> =
            s.points.iter().take(MAX_POINTS).map(|&(t, b)| format!("{:.1},{:.1}", x(t), y(b))).collect();
        let _ = write!(
            svg,
            r#"<polyline class="series" fill="none" stroke="{colour}" stroke-width="2" points="{}"/>"#,
            points.join(" ")
        );
        if let [only] = s.points.as_slice() {
            let _ =
                write!(svg, r#"<circle cx="{:.1}" cy="{:.1}" r="3" fill="{colour}"/>"#, x(only.0), y(only.1));
        }
        let ly = HEIGHT + 20.0 * i as f64;
        let last = s.points.iter().take(MAX_POINTS).last().map(|p| human_bytes(p.1)).unwrap_or_default();
        let _ = write!(
            svg,
            r#"<rect x="{LEFT}" y="{r}" width="12" height="12" fill="{colour}"/><text x="{tx}" y="{ty}" font-size="12" font-family="monospace">{} ({last})</text>"#,
            escape(&s.label),
            r = ly - 10.0,
            tx = LEFT + 18.0,
            ty = ly,
        );
    }
    svg.push_str("</svg>");
    svg
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_read_as_people_read_them() {
        assert_eq!(human_bytes(0), "0 B");
        assert_eq!(human_bytes(1023), "1023 B");
        assert_eq!(human_bytes(7_814_503), "7.5 MiB");
        assert_eq!(human_bytes(i64::MAX), "8192.0 PiB");
    }

    #[test]
    fn a_chart_has_one_line_per_series_and_escapes_its_labels() {
        let svg = volume_svg(
            "volume <growth>",
            &[
                Series { label: "a<script>".into(), points: vec![(0, 10), (3600, 20), (7200, 40)] },
                Series { label: "b".into(), points: vec![(3600, 5)] },
            ],
        );
        assert_eq!(svg.matches("<polyline").count(), 2);
        assert_eq!(svg.matches("<circle").count(), 1);
        assert!(svg.contains("a&lt;script&gt;") && !svg.contains("a<script>"));
        assert!(svg.contains("<title>volume &lt;growth&gt;</title>"));
        // The first point at the left, a quarter of the largest value three quarters down;
        // the largest value at the top right of the drawing area.
        assert!(svg.contains("points=\"80.0,185.0 "), "{svg}");
        assert!(svg.contains(" 740.0,20.0\""), "{svg}");
    }

    #[test]
    fn nothing_to_draw_is_said_in_words_and_series_are_bounded() {
        assert!(volume_svg("t", &[]).contains("No data volume"));
        let many: Vec<Series> =
            (0..20).map(|i| Series { label: i.to_string(), points: vec![(0, 1), (1, 2)] }).collect();
        assert_eq!(volume_svg("t", &many).matches("<polyline").count(), MAX_SERIES);
    }
}
