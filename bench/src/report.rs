//! A result row (a measurement, its reference from the same run, the ratio and the target),
//! the Markdown table, and the JSON both halves of the harness write (`bench/editors/` writes the
//! same fields).

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Row {
    /// The row of the table in issue 11 / BENCHMARKS.md, with a suffix for its variants
    /// ("5 p99", "9 idle").
    pub row: String,
    pub measurement: String,
    pub unit: String,
    #[serde(deserialize_with = "nan_if_null")]
    pub peerdoc: f64,
    #[serde(deserialize_with = "nan_if_null")]
    pub reference: f64,
    /// What the reference is.
    pub reference_name: String,
    /// `peerdoc / reference` (JSON `null` when not a number: nothing to compare against).
    #[serde(deserialize_with = "nan_if_null")]
    pub ratio: f64,
    /// The target, in words ("≤ 1.25× and < 50 ms").
    pub target: String,
    pub met: bool,
}

/// JSON has no NaN or infinity (serde_json writes `null`): read `null` back as NaN.
fn nan_if_null<'de, D: serde::Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    Ok(Option::<f64>::deserialize(d)?.unwrap_or(f64::NAN))
}

impl Row {
    /// A row whose target is a ratio, and optionally an absolute bound on peerdoc's value.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        row: &str,
        measurement: &str,
        unit: &str,
        peerdoc: f64,
        reference: f64,
        reference_name: &str,
        max_ratio: f64,
        max_value: Option<f64>,
    ) -> Row {
        let ratio = if reference > 0.0 {
            peerdoc / reference
        } else {
            f64::INFINITY
        };
        let mut target = format!("≤ {max_ratio}×");
        let mut met = ratio <= max_ratio;
        if let Some(max) = max_value {
            target.push_str(&format!(" and < {max} {unit}"));
            met &= peerdoc < max;
        }
        Row {
            row: row.into(),
            measurement: measurement.into(),
            unit: unit.into(),
            peerdoc,
            reference,
            reference_name: reference_name.into(),
            ratio,
            target,
            met,
        }
    }

    /// A row that is measured and compared, with no target (a figure the issue asks for).
    pub fn info(
        row: &str,
        measurement: &str,
        unit: &str,
        peerdoc: f64,
        reference: f64,
        reference_name: &str,
    ) -> Row {
        Row {
            row: row.into(),
            measurement: measurement.into(),
            unit: unit.into(),
            peerdoc,
            reference,
            reference_name: reference_name.into(),
            ratio: if reference > 0.0 {
                peerdoc / reference
            } else {
                f64::NAN
            },
            target: "none: a figure".into(),
            met: true,
        }
    }

    /// A row whose target is an absolute bound: nothing to compare against in the same run.
    pub fn bound(row: &str, measurement: &str, unit: &str, peerdoc: f64, max: f64) -> Row {
        Row {
            row: row.into(),
            measurement: measurement.into(),
            unit: unit.into(),
            peerdoc,
            reference: f64::NAN,
            reference_name: "none: an absolute bound".into(),
            ratio: f64::NAN,
            target: format!("≤ {max} {unit}"),
            met: peerdoc <= max,
        }
    }
}

fn number(v: f64) -> String {
    if !v.is_finite() {
        "n/a".into()
    } else if v == 0.0 || v.abs() >= 100.0 {
        format!("{v:.0}")
    } else if v.abs() >= 10.0 {
        format!("{v:.1}")
    } else if v.abs() >= 0.1 {
        format!("{v:.2}")
    } else {
        format!("{v:.4}")
    }
}

/// The table, rows in order.
pub fn markdown(rows: &[Row]) -> String {
    let mut rows = rows.to_vec();
    rows.sort_by_key(|r| {
        let n: u32 = r
            .row
            .split(' ')
            .next()
            .and_then(|n| n.parse().ok())
            .unwrap_or(99);
        (n, r.row.clone())
    });
    let mut out = String::from(
        "| # | measurement | peerdoc | reference (same run) | ratio | target | met |\n\
         |---|---|---|---|---|---|---|\n",
    );
    for r in &rows {
        out.push_str(&format!(
            "| {} | {} | {} {} | {} {} ({}) | {}× | {} | {} |\n",
            r.row,
            r.measurement,
            number(r.peerdoc),
            r.unit,
            number(r.reference),
            r.unit,
            r.reference_name,
            number(r.ratio),
            r.target,
            if r.met { "yes" } else { "**no**" },
        ));
    }
    out
}

/// Percentile `p` (0–100) of unsorted samples.
pub fn percentile(samples: &[f64], p: f64) -> f64 {
    let mut s = samples.to_vec();
    s.sort_by(f64::total_cmp);
    if s.is_empty() {
        return f64::NAN;
    }
    let i = ((p / 100.0) * (s.len() - 1) as f64).round() as usize;
    s[i.min(s.len() - 1)]
}

pub fn median(samples: &[f64]) -> f64 {
    percentile(samples, 50.0)
}

/// The sum of a metric's samples in OpenMetrics text (a node's `GET /metrics`), over the label
/// sets that contain `label` ("" for all).
pub fn metric_sum(text: &str, name: &str, label: &str) -> f64 {
    text.lines()
        .filter(|line| {
            line.strip_prefix(name).is_some_and(|rest| {
                (rest.starts_with('{') && rest.contains(label))
                    || (label.is_empty() && rest.starts_with(' '))
            })
        })
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metric_sums_label_sets_and_ignores_longer_names() {
        let text = "# TYPE x counter\n\
                    x_total{hash=\"a\",direction=\"Outbound\"} 3\n\
                    x_total{hash=\"b\",direction=\"Inbound\"} 4\n\
                    x_total_other 100\n";
        assert_eq!(metric_sum(text, "x_total", ""), 7.0);
        assert_eq!(metric_sum(text, "x_total", "direction=\"Outbound\""), 3.0);
        assert_eq!(metric_sum("y 2\n", "y", ""), 2.0);
    }
}
