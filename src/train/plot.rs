//! The loss curve of a run (training loss per step, eval loss where measured) as an SVG.

use std::path::Path;

use plotters::prelude::*;

use crate::error::{Result, SeftError};

pub fn loss_curve(metrics: &Path, out: &Path) -> Result<()> {
    let text = std::fs::read_to_string(metrics).map_err(|e| SeftError::io(metrics, e))?;
    let (mut train, mut eval) = (Vec::new(), Vec::new());
    for line in text.lines() {
        let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        let Some(step) = v.get("step").and_then(|s| s.as_f64()) else {
            continue;
        };
        if let Some(l) = v.get("loss").and_then(|l| l.as_f64()) {
            train.push((step, l));
        }
        if let Some(l) = v.get("eval_loss").and_then(|l| l.as_f64()) {
            eval.push((step, l));
        }
    }
    if train.is_empty() {
        return Ok(());
    }
    let max_step = train.iter().chain(&eval).map(|p| p.0).fold(1.0, f64::max);
    let max_loss = train.iter().chain(&eval).map(|p| p.1).fold(0.0, f64::max) * 1.05;
    let draw = || -> std::result::Result<(), Box<dyn std::error::Error>> {
        let root = SVGBackend::new(out, (800, 480)).into_drawing_area();
        root.fill(&WHITE)?;
        let mut chart = ChartBuilder::on(&root)
            .caption("loss", ("sans-serif", 20))
            .margin(10)
            .x_label_area_size(35)
            .y_label_area_size(50)
            .build_cartesian_2d(0.0..max_step, 0.0..max_loss.max(1e-6))?;
        chart
            .configure_mesh()
            .x_desc("step")
            .y_desc("loss per target token")
            .draw()?;
        chart
            .draw_series(LineSeries::new(train.clone(), &BLUE))?
            .label("train")
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 15, y)], BLUE));
        if !eval.is_empty() {
            chart
                .draw_series(LineSeries::new(eval.clone(), &RED))?
                .label("eval")
                .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 15, y)], RED));
            chart.draw_series(eval.iter().map(|&p| Circle::new(p, 3, RED.filled())))?;
        }
        chart.configure_series_labels().border_style(BLACK).draw()?;
        root.present()?;
        Ok(())
    };
    draw().map_err(|e| SeftError::file(out, format!("cannot draw the loss curve: {e}")))
}
