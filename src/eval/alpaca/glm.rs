//! The L1-penalized logistic regression behind AlpacaEval's length-controlled win rate
//! (alpaca_eval `metrics/glm_winrate.py`, `fit_LogisticRegressionCV`): soft targets p ∈ [0, 1],
//! optional sample weights s, no intercept, objective
//!
//! ```text
//!   ‖w‖₁ + C · Σᵢ sᵢ · [ −pᵢ log σ(xᵢ·w) − (1 − pᵢ) log(1 − σ(xᵢ·w)) ]
//! ```
//!
//! which is what liblinear minimizes for the duplicated rows alpaca_eval builds (label 1 with
//! weight p·s, label 0 with weight (1 − p)·s). C is chosen among `logspace(-4, 4, 10)` by 5-fold
//! cross-validation on the weighted soft log-loss, folds assigned as scikit-learn's GroupKFold
//! assigns equal-size groups, then the model is refit on all rows with the best C.
//!
//! Solved by cyclic coordinate descent with a Newton step per coordinate, the soft-threshold
//! for the L1 term, and a backtracking line search. Written here rather than pulled from a crate
//! because linfa's logistic regression has neither soft targets nor an L1 penalty.

/// A dense design matrix with sparse columns: each feature stores its non-zero rows, so the
/// one-hot instruction columns of the difficulty fit cost only their non-zeros.
#[derive(Debug, Clone, Default)]
pub struct Design {
    pub rows: usize,
    /// For each feature: (row, value) pairs.
    pub columns: Vec<Vec<(usize, f64)>>,
    pub names: Vec<String>,
}

impl Design {
    pub fn new(rows: usize) -> Self {
        Design {
            rows,
            ..Default::default()
        }
    }

    /// Adds a dense feature column.
    pub fn push_dense(&mut self, name: &str, values: &[f64]) {
        assert_eq!(values.len(), self.rows, "column length");
        let col = values
            .iter()
            .enumerate()
            .filter(|(_, v)| **v != 0.0)
            .map(|(i, v)| (i, *v))
            .collect();
        self.push_sparse(name, col);
    }

    pub fn push_sparse(&mut self, name: &str, col: Vec<(usize, f64)>) {
        self.columns.push(col);
        self.names.push(name.to_string());
    }

    /// x · w for every row.
    pub fn predict_linear(&self, w: &[f64]) -> Vec<f64> {
        let mut z = vec![0.0; self.rows];
        for (col, wj) in self.columns.iter().zip(w) {
            for &(i, x) in col {
                z[i] += x * wj;
            }
        }
        z
    }

    /// The same features restricted to `rows` (renumbered 0..).
    fn subset(&self, rows: &[usize]) -> Design {
        let mut map = vec![usize::MAX; self.rows];
        for (new, &old) in rows.iter().enumerate() {
            map[old] = new;
        }
        Design {
            rows: rows.len(),
            columns: self
                .columns
                .iter()
                .map(|c| {
                    c.iter()
                        .filter(|(i, _)| map[*i] != usize::MAX)
                        .map(|&(i, x)| (map[i], x))
                        .collect()
                })
                .collect(),
            names: self.names.clone(),
        }
    }
}

pub fn sigmoid(z: f64) -> f64 {
    // exp(-logaddexp(0, -z)), stable for both signs (alpaca_eval's `_logistic`).
    if z >= 0.0 {
        1.0 / (1.0 + (-z).exp())
    } else {
        let e = z.exp();
        e / (1.0 + e)
    }
}

/// −[p log σ(z) + (1 − p) log(1 − σ(z))], computed from z without overflow.
fn soft_log_loss(p: f64, z: f64) -> f64 {
    // log σ(z) = −softplus(−z), log(1 − σ(z)) = −softplus(z)
    let softplus = |t: f64| t.max(0.0) + (-t.abs()).exp().ln_1p();
    p * softplus(-z) + (1.0 - p) * softplus(z)
}

/// Targets and weights of a fit.
pub struct Targets<'a> {
    pub p: &'a [f64],
    pub weight: Option<&'a [f64]>,
}

impl Targets<'_> {
    fn w(&self, i: usize) -> f64 {
        self.weight.map_or(1.0, |w| w[i])
    }
}

fn objective(x: &Design, y: &Targets, c: f64, w: &[f64], z: &[f64]) -> f64 {
    let l1: f64 = w.iter().map(|v| v.abs()).sum();
    let loss: f64 = (0..x.rows)
        .map(|i| y.w(i) * soft_log_loss(y.p[i], z[i]))
        .sum();
    l1 + c * loss
}

/// Minimizes the objective above for a fixed C; returns the coefficients.
pub fn fit_l1_logistic(x: &Design, y: &Targets, c: f64) -> Vec<f64> {
    let d = x.columns.len();
    let mut w = vec![0.0; d];
    let mut z = vec![0.0; x.rows];
    const MAX_SWEEPS: usize = 1000;
    const TOL: f64 = 1e-9;
    for _ in 0..MAX_SWEEPS {
        let mut max_change: f64 = 0.0;
        for (j, col) in x.columns.iter().enumerate() {
            if col.is_empty() {
                continue;
            }
            let (mut g, mut h) = (0.0, 0.0);
            for &(i, xij) in col {
                let s = sigmoid(z[i]);
                let wi = y.w(i);
                g += wi * (s - y.p[i]) * xij;
                h += wi * s * (1.0 - s) * xij * xij;
            }
            let (g, h) = (c * g, (c * h).max(1e-12));
            // Newton direction of g·δ + h·δ²/2 + |w_j + δ|.
            let wj = w[j];
            let delta = if g + 1.0 <= h * wj {
                -(g + 1.0) / h
            } else if g - 1.0 >= h * wj {
                -(g - 1.0) / h
            } else {
                -wj
            };
            if delta == 0.0 {
                continue;
            }
            // Backtracking on the part of the objective this coordinate changes.
            let part = |wj_new: f64, z: &[f64]| -> f64 {
                let shift = wj_new - wj;
                let loss: f64 = col
                    .iter()
                    .map(|&(i, xij)| y.w(i) * soft_log_loss(y.p[i], z[i] + shift * xij))
                    .sum();
                wj_new.abs() + c * loss
            };
            let before = part(wj, &z);
            let mut step = 1.0;
            let mut accepted = None;
            for _ in 0..30 {
                let candidate = wj + step * delta;
                if part(candidate, &z) <= before + 1e-12 * before.abs().max(1.0) {
                    accepted = Some(candidate);
                    break;
                }
                step *= 0.5;
            }
            let Some(new) = accepted else { continue };
            let shift = new - wj;
            for &(i, xij) in col {
                z[i] += shift * xij;
            }
            w[j] = new;
            max_change = max_change.max(shift.abs() * (1.0 + h.sqrt()));
        }
        if max_change < TOL {
            break;
        }
    }
    debug_assert!(objective(x, y, c, &w, &z).is_finite());
    w
}

/// scikit-learn's `np.logspace(-4, 4, 10)`, LogisticRegressionCV's default grid of C.
pub fn default_cs() -> Vec<f64> {
    (0..10)
        .map(|k| 10f64.powf(-4.0 + 8.0 * k as f64 / 9.0))
        .collect()
}

/// GroupKFold with one equal-size group per row: scikit-learn visits the groups from the last
/// to the first and gives each to the (first) lightest fold, so row i lands in fold (n−1−i) mod k.
pub fn group_k_fold(n: usize, k: usize) -> Vec<usize> {
    (0..n).map(|i| (n - 1 - i) % k).collect()
}

/// The result of a cross-validated fit.
#[derive(Debug, Clone)]
pub struct CvFit {
    pub coefficients: Vec<f64>,
    pub c: f64,
    /// Mean held-out score (negative weighted soft log-loss) for each C in the grid.
    pub scores: Vec<f64>,
}

/// Chooses C by k-fold cross-validation on the weighted soft log-loss, then refits on all rows.
pub fn fit_l1_logistic_cv(x: &Design, y: &Targets, folds: usize) -> CvFit {
    let cs = default_cs();
    let fold_of = group_k_fold(x.rows, folds);
    let mut scores = vec![0.0; cs.len()];
    for f in 0..folds {
        let train: Vec<usize> = (0..x.rows).filter(|&i| fold_of[i] != f).collect();
        let test: Vec<usize> = (0..x.rows).filter(|&i| fold_of[i] == f).collect();
        if train.is_empty() || test.is_empty() {
            continue;
        }
        let (xt, xv) = (x.subset(&train), x.subset(&test));
        let pick = |idx: &[usize], v: &[f64]| idx.iter().map(|&i| v[i]).collect::<Vec<_>>();
        let (pt, pv) = (pick(&train, y.p), pick(&test, y.p));
        let (wt, wv) = match y.weight {
            Some(w) => (Some(pick(&train, w)), Some(pick(&test, w))),
            None => (None, None),
        };
        let yt = Targets {
            p: &pt,
            weight: wt.as_deref(),
        };
        for (k, &c) in cs.iter().enumerate() {
            let w = fit_l1_logistic(&xt, &yt, c);
            let z = xv.predict_linear(&w);
            // alpaca_eval's `logloss`: predictions clipped to [1e-15, 1 − 1e-15], mean over rows.
            let loss: f64 = (0..xv.rows)
                .map(|i| {
                    let q = sigmoid(z[i]).clamp(1e-15, 1.0 - 1e-15);
                    let l = -(pv[i] * q.ln() + (1.0 - pv[i]) * (1.0 - q).ln());
                    l * wv.as_ref().map_or(1.0, |w| w[i])
                })
                .sum::<f64>()
                / xv.rows as f64;
            scores[k] += -loss / folds as f64;
        }
    }
    let best = (0..cs.len()).fold(0, |b, k| if scores[k] > scores[b] { k } else { b });
    CvFit {
        coefficients: fit_l1_logistic(x, y, cs[best]),
        c: cs[best],
        scores,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn design(cols: &[&[f64]]) -> Design {
        let mut d = Design::new(cols[0].len());
        for (j, c) in cols.iter().enumerate() {
            d.push_dense(&format!("x{j}"), c);
        }
        d
    }

    #[test]
    fn unpenalized_limit_recovers_the_soft_target_log_odds() {
        // One all-ones feature: the optimum of the smooth part is logit(mean p).
        let x = design(&[&[1.0; 4]]);
        let p = [0.9, 0.7, 0.8, 0.8];
        let w = fit_l1_logistic(
            &x,
            &Targets {
                p: &p,
                weight: None,
            },
            1e6,
        );
        assert!((sigmoid(w[0]) - 0.8).abs() < 1e-5, "{w:?}");
    }

    #[test]
    fn strong_penalty_zeroes_every_coefficient() {
        let x = design(&[&[1.0, -1.0, 2.0], &[0.5, 0.1, -0.3]]);
        let p = [0.9, 0.2, 0.7];
        let w = fit_l1_logistic(
            &x,
            &Targets {
                p: &p,
                weight: None,
            },
            1e-4,
        );
        assert_eq!(w, vec![0.0, 0.0]);
    }

    #[test]
    fn coordinate_descent_reaches_the_optimality_conditions() {
        // KKT of the L1 problem: |∂loss/∂w_j| ≤ 1 where w_j = 0, = −sign(w_j) elsewhere.
        let a: Vec<f64> = (0..40)
            .map(|i| ((i * 37) % 11) as f64 / 5.0 - 1.0)
            .collect();
        let b: Vec<f64> = (0..40).map(|i| ((i * 17) % 7) as f64 / 3.0 - 1.0).collect();
        let p: Vec<f64> = (0..40)
            .map(|i| sigmoid(1.5 * a[i] - 0.5 * b[i] + 0.3 * ((i % 3) as f64 - 1.0)))
            .collect();
        let weight: Vec<f64> = (0..40).map(|i| 0.5 + (i % 4) as f64 / 4.0).collect();
        let x = design(&[&a, &b, &[1.0; 40]]);
        let y = Targets {
            p: &p,
            weight: Some(&weight),
        };
        let c = 0.7;
        let w = fit_l1_logistic(&x, &y, c);
        let z = x.predict_linear(&w);
        for (j, col) in x.columns.iter().enumerate() {
            let g: f64 = c * col
                .iter()
                .map(|&(i, v)| weight[i] * (sigmoid(z[i]) - p[i]) * v)
                .sum::<f64>();
            if w[j] == 0.0 {
                assert!(g.abs() <= 1.0 + 1e-6, "feature {j}: {g}");
            } else {
                assert!(
                    (g + w[j].signum()).abs() < 1e-6,
                    "feature {j}: {g} vs {}",
                    w[j]
                );
            }
        }
    }

    #[test]
    fn folds_follow_group_k_fold() {
        assert_eq!(group_k_fold(7, 5), vec![1, 0, 4, 3, 2, 1, 0]);
    }
}
