//! Win rates exactly as alpaca_eval computes them (`metrics/winrate.py` and the scoring rules in
//! `metrics/helpers.py`): preferences p in [1, 2] (0 and 1.5 are draws), the weighted win rate is
//! 100·mean(p − 1) with the standard error of that mean (ddof = 1), and the discrete win rate
//! rounds each preference to a win, a loss or (exactly 1.5) a draw counted as half.

use serde::{Deserialize, Serialize};

/// Head-to-head statistics of a model against the baseline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WinRate {
    /// Percent: 100 · mean(p − 1).
    pub win_rate: f64,
    /// Percent: standard error of the mean above.
    pub standard_error: f64,
    pub n_wins: usize,
    pub n_wins_base: usize,
    pub n_draws: usize,
    /// Pairs with a usable preference (unjudged ones are dropped, as alpaca_eval does).
    pub n_total: usize,
    /// Percent: wins + draws / 2 after rounding each preference.
    pub discrete_win_rate: f64,
}

/// alpaca_eval maps the legacy draw code 0 to 1.5 and drops missing or out-of-range values.
fn usable(preferences: &[Option<f64>]) -> Vec<f64> {
    preferences
        .iter()
        .flatten()
        .map(|&p| if p == 0.0 { 1.5 } else { p })
        .filter(|p| (1.0..=2.0).contains(p))
        .collect()
}

pub fn mean(xs: &[f64]) -> f64 {
    xs.iter().sum::<f64>() / xs.len() as f64
}

/// pandas' `Series.sem()`: sample standard deviation (ddof = 1) over sqrt(n); NaN below 2 values.
pub fn sem(xs: &[f64]) -> f64 {
    let n = xs.len();
    if n < 2 {
        return f64::NAN;
    }
    let m = mean(xs);
    let var = xs.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (n - 1) as f64;
    (var / n as f64).sqrt()
}

/// Weighted and discrete win rates of a list of preferences (None = not judged).
pub fn win_rate(preferences: &[Option<f64>]) -> WinRate {
    let p = usable(preferences);
    let shifted: Vec<f64> = p.iter().map(|x| x - 1.0).collect();
    let discrete: Vec<f64> = p
        .iter()
        .map(|&x| match x.partial_cmp(&1.5) {
            Some(std::cmp::Ordering::Greater) => 1.0,
            Some(std::cmp::Ordering::Less) => 0.0,
            _ => 0.5,
        })
        .collect();
    WinRate {
        win_rate: mean(&shifted) * 100.0,
        standard_error: sem(&shifted) * 100.0,
        n_wins: shifted.iter().filter(|&&x| x > 0.5).count(),
        n_wins_base: shifted.iter().filter(|&&x| x < 0.5).count(),
        n_draws: p.iter().filter(|&&x| x == 1.5).count(),
        n_total: p.len(),
        discrete_win_rate: mean(&discrete) * 100.0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draws_count_half_and_unjudged_rows_are_dropped() {
        let w = win_rate(&[Some(2.0), Some(1.0), Some(0.0), Some(1.5), None, Some(1.75)]);
        assert_eq!(w.n_total, 5);
        assert_eq!((w.n_wins, w.n_wins_base, w.n_draws), (2, 1, 2));
        assert!((w.win_rate - 100.0 * (1.0 + 0.0 + 0.5 + 0.5 + 0.75) / 5.0).abs() < 1e-12);
        assert!((w.discrete_win_rate - 100.0 * 3.0 / 5.0).abs() < 1e-12);
    }

    #[test]
    fn sem_matches_pandas() {
        // pandas.Series([0.0, 1.0, 1.0, 0.5]).sem() = 0.2394...
        assert!((sem(&[0.0, 1.0, 1.0, 0.5]) - 0.239_356_776_939_085).abs() < 1e-12);
        assert!(sem(&[1.0]).is_nan());
    }
}
