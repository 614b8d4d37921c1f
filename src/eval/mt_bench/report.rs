//! MT-Bench scores as FastChat's `show_result.py` reports them (mean rating over graded turns,
//! malformed verdicts excluded), per turn and per category, plus radar charts.

use std::collections::BTreeMap;
use std::path::Path;

use plotters::prelude::*;
use serde::{Deserialize, Serialize};

use super::grading::Judgment;
use crate::error::{Result, SeftError};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelScores {
    pub model: String,
    /// Mean over all graded turns.
    pub score: f64,
    pub turn_1: f64,
    pub turn_2: f64,
    pub categories: BTreeMap<String, f64>,
    pub graded: usize,
    /// Verdicts without a parsable rating (score -1), excluded from the means.
    pub malformed: usize,
}

fn mean(xs: impl Iterator<Item = f64>) -> f64 {
    let (s, n) = xs.fold((0.0, 0usize), |(s, n), x| (s + x, n + 1));
    if n == 0 { f64::NAN } else { s / n as f64 }
}

pub fn scores(judgments: &[Judgment]) -> Vec<ModelScores> {
    let mut by_model: BTreeMap<&str, Vec<&Judgment>> = BTreeMap::new();
    for j in judgments {
        by_model.entry(&j.model).or_default().push(j);
    }
    let mut out: Vec<ModelScores> = by_model
        .into_iter()
        .map(|(model, js)| {
            let valid: Vec<&&Judgment> = js.iter().filter(|j| j.score >= 0.0).collect();
            let mut categories: BTreeMap<String, Vec<f64>> = BTreeMap::new();
            for j in &valid {
                categories
                    .entry(j.category.clone())
                    .or_default()
                    .push(j.score);
            }
            ModelScores {
                model: model.to_string(),
                score: mean(valid.iter().map(|j| j.score)),
                turn_1: mean(valid.iter().filter(|j| j.turn == 1).map(|j| j.score)),
                turn_2: mean(valid.iter().filter(|j| j.turn == 2).map(|j| j.score)),
                categories: categories
                    .into_iter()
                    .map(|(c, v)| (c, mean(v.into_iter())))
                    .collect(),
                graded: valid.len(),
                malformed: js.len() - valid.len(),
            }
        })
        .collect();
    out.sort_by(|a, b| b.score.total_cmp(&a.score).then(a.model.cmp(&b.model)));
    out
}

pub fn markdown(scores: &[ModelScores], judge: &str) -> String {
    let mut cats: Vec<&String> = scores.iter().flat_map(|s| s.categories.keys()).collect();
    cats.sort();
    cats.dedup();
    let mut md = format!("# MT-Bench (single-answer grading)\n\nJudge: {judge}\n\n");
    md.push_str("| model | score | turn 1 | turn 2 | graded | malformed |");
    for c in &cats {
        md.push_str(&format!(" {c} |"));
    }
    md.push_str("\n|---|---|---|---|---|---|");
    md.push_str(&"---|".repeat(cats.len()));
    md.push('\n');
    for s in scores {
        md.push_str(&format!(
            "| {} | {:.2} | {:.2} | {:.2} | {} | {} |",
            s.model, s.score, s.turn_1, s.turn_2, s.graded, s.malformed
        ));
        for c in &cats {
            md.push_str(&format!(
                " {:.2} |",
                s.categories.get(*c).copied().unwrap_or(f64::NAN)
            ));
        }
        md.push('\n');
    }
    md
}

const PALETTE: [RGBColor; 8] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
];

/// A radar chart of per-category scores (0–10) of one or more models, as an SVG.
pub fn radar_chart(scores: &[&ModelScores], title: &str, out: &Path) -> Result<()> {
    let mut cats: Vec<&String> = scores.iter().flat_map(|s| s.categories.keys()).collect();
    cats.sort();
    cats.dedup();
    if cats.len() < 3 {
        return Err(SeftError::Invalid(format!(
            "a radar chart needs at least 3 categories, got {}",
            cats.len()
        )));
    }
    let draw = || -> std::result::Result<(), Box<dyn std::error::Error>> {
        let (w, h) = (640i32, 600i32);
        let root = SVGBackend::new(out, (w as u32, h as u32)).into_drawing_area();
        root.fill(&WHITE)?;
        root.draw(&Text::new(
            title.to_string(),
            (20, 15),
            ("sans-serif", 20).into_font(),
        ))?;
        let (cx, cy, radius) = (w / 2, h / 2 + 20, 210.0);
        let point = |k: usize, value: f64| -> (i32, i32) {
            let angle =
                std::f64::consts::TAU * k as f64 / cats.len() as f64 - std::f64::consts::FRAC_PI_2;
            let r = radius * value.clamp(0.0, 10.0) / 10.0;
            (cx + (r * angle.cos()) as i32, cy + (r * angle.sin()) as i32)
        };
        for ring in [2.0, 4.0, 6.0, 8.0, 10.0] {
            let mut pts: Vec<(i32, i32)> = (0..cats.len()).map(|k| point(k, ring)).collect();
            pts.push(pts[0]);
            root.draw(&PathElement::new(pts, RGBColor(210, 210, 210)))?;
            let (x, y) = point(0, ring);
            root.draw(&Text::new(
                format!("{ring}"),
                (x + 4, y),
                ("sans-serif", 11).into_font(),
            ))?;
        }
        for (k, c) in cats.iter().enumerate() {
            root.draw(&PathElement::new(
                vec![(cx, cy), point(k, 10.0)],
                RGBColor(210, 210, 210),
            ))?;
            let (x, y) = point(k, 11.3);
            root.draw(&Text::new(
                c.to_string(),
                (x - 30, y - 6),
                ("sans-serif", 14).into_font(),
            ))?;
        }
        for (m, s) in scores.iter().enumerate() {
            let color = PALETTE[m % PALETTE.len()];
            let mut pts: Vec<(i32, i32)> = cats
                .iter()
                .enumerate()
                .map(|(k, c)| {
                    point(
                        k,
                        s.categories
                            .get(*c)
                            .copied()
                            .filter(|v| v.is_finite())
                            .unwrap_or(0.0),
                    )
                })
                .collect();
            root.draw(&Polygon::new(pts.clone(), color.mix(0.15)))?;
            pts.push(pts[0]);
            root.draw(&PathElement::new(pts, color.stroke_width(2)))?;
            let label = format!("{} ({:.2})", s.model, s.score);
            root.draw(&Rectangle::new(
                [(20, 40 + 18 * m as i32), (32, 52 + 18 * m as i32)],
                color.filled(),
            ))?;
            root.draw(&Text::new(
                label,
                (38, 40 + 18 * m as i32),
                ("sans-serif", 13).into_font(),
            ))?;
        }
        root.present()?;
        Ok(())
    };
    draw().map_err(|e| SeftError::file(out, format!("cannot draw the radar chart: {e}")))
}
