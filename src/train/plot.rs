//! The curves of a run as SVGs: the loss (training per step, held-out where measured) and, for
//! preference runs, the reward margin and accuracy (TRL's `rewards/margins`, `rewards/accuracies`).

use std::path::Path;

use plotters::prelude::*;

use crate::error::{Result, SeftError};

/// (step, value) of `key` in every metrics line that has it.
fn series(lines: &[serde_json::Value], key: &str) -> Vec<(f64, f64)> {
    lines
        .iter()
        .filter_map(|v| Some((v.get("step")?.as_f64()?, v.get(key)?.as_f64()?)))
        .filter(|(_, y)| y.is_finite())
        .collect()
}

fn read_lines(metrics: &Path) -> Result<Vec<serde_json::Value>> {
    let text = std::fs::read_to_string(metrics).map_err(|e| SeftError::io(metrics, e))?;
    Ok(text
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect())
}

/// One chart of training (blue) and held-out (red, dotted with points) series.
fn chart(
    out: &Path,
    caption: &str,
    y_desc: &str,
    train: &[(f64, f64)],
    eval: &[(f64, f64)],
) -> Result<()> {
    let max_step = train.iter().chain(eval).map(|p| p.0).fold(1.0, f64::max);
    let max_y = train.iter().chain(eval).map(|p| p.1).fold(0.0, f64::max);
    let min_y = train.iter().chain(eval).map(|p| p.1).fold(0.0, f64::min);
    let pad = 0.05 * (max_y - min_y).max(1e-6);
    let draw = || -> std::result::Result<(), Box<dyn std::error::Error>> {
        let root = SVGBackend::new(out, (800, 480)).into_drawing_area();
        root.fill(&WHITE)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(caption, ("sans-serif", 20))
            .margin(10)
            .x_label_area_size(35)
            .y_label_area_size(50)
            .build_cartesian_2d(
                0.0..max_step,
                (min_y - if min_y < 0.0 { pad } else { 0.0 })..(max_y + pad),
            )?;
        chart
            .configure_mesh()
            .x_desc("step")
            .y_desc(y_desc)
            .draw()?;
        chart
            .draw_series(LineSeries::new(train.to_vec(), &BLUE))?
            .label("train")
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 15, y)], BLUE));
        if !eval.is_empty() {
            chart
                .draw_series(LineSeries::new(eval.to_vec(), &RED))?
                .label("eval")
                .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 15, y)], RED));
            chart.draw_series(eval.iter().map(|&p| Circle::new(p, 3, RED.filled())))?;
        }
        chart.configure_series_labels().border_style(BLACK).draw()?;
        root.present()?;
        Ok(())
    };
    draw().map_err(|e| SeftError::file(out, format!("cannot draw {caption}: {e}")))
}

/// `loss.svg` from the run's metrics file (nothing when no training step was logged).
pub fn loss_curve(metrics: &Path, out: &Path) -> Result<()> {
    let lines = read_lines(metrics)?;
    let train = series(&lines, "loss");
    if train.is_empty() {
        return Ok(());
    }
    let y_desc = match lines.iter().any(|l| l.get("rewards/margins").is_some()) {
        true => "preference loss",
        false => "loss per target token",
    };
    chart(out, "loss", y_desc, &train, &series(&lines, "eval_loss"))
}

/// `reward_margins.svg` and `reward_accuracies.svg` next to `loss.svg` for a preference run: the reward margin (chosen −
/// rejected) and the share of pairs whose chosen reward is higher, training and held-out.
pub fn reward_curves(metrics: &Path, out_dir: &Path) -> Result<()> {
    let lines = read_lines(metrics)?;
    let margins = series(&lines, "rewards/margins");
    if margins.is_empty() {
        return Ok(());
    }
    chart(
        &out_dir.join("reward_margins.svg"),
        "rewards/margins",
        "chosen − rejected reward",
        &margins,
        &series(&lines, "eval_rewards/margins"),
    )?;
    chart(
        &out_dir.join("reward_accuracies.svg"),
        "rewards/accuracies",
        "pairs with chosen reward > rejected",
        &series(&lines, "rewards/accuracies"),
        &series(&lines, "eval_rewards/accuracies"),
    )
}
