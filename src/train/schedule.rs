//! Learning-rate schedules with transformers' formulas (`get_cosine_schedule_with_warmup`,
//! `get_linear_schedule_with_warmup`, constant with warmup), indexed by the 0-based optimizer
//! step, so a run's learning rates match a Trainer run with the same settings.

use crate::train::params::Schedule;

pub fn learning_rate(
    schedule: Schedule,
    base: f64,
    step: usize,
    warmup: usize,
    total: usize,
) -> f64 {
    if step < warmup {
        return base * step as f64 / warmup.max(1) as f64;
    }
    let progress = (step - warmup) as f64 / (total.saturating_sub(warmup)).max(1) as f64;
    match schedule {
        Schedule::Constant => base,
        Schedule::Linear => base * (1.0 - progress).max(0.0),
        Schedule::Cosine => base * 0.5 * (1.0 + (std::f64::consts::PI * progress).cos()).max(0.0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warmup_then_decay() {
        assert_eq!(learning_rate(Schedule::Cosine, 1.0, 0, 10, 110), 0.0);
        assert_eq!(learning_rate(Schedule::Cosine, 1.0, 5, 10, 110), 0.5);
        assert_eq!(learning_rate(Schedule::Cosine, 1.0, 10, 10, 110), 1.0);
        assert!((learning_rate(Schedule::Cosine, 1.0, 60, 10, 110) - 0.5).abs() < 1e-12);
        assert!((learning_rate(Schedule::Linear, 1.0, 60, 10, 110) - 0.5).abs() < 1e-12);
        assert_eq!(learning_rate(Schedule::Constant, 1.0, 100, 10, 110), 1.0);
    }
}
