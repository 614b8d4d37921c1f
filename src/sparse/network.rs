//! The two-layer shifted-ReLU network of the paper, its training data, and the per-point and
//! per-neuron arithmetic that every training path shares (so that they agree bit for bit).

use rand::{SeedableRng, rngs::StdRng};
use rayon::prelude::*;

use super::products::PointMatrix;
use super::random::{gaussian_vec, sign_vec};
use crate::error::{Result, SeftError};
use crate::numeric::validate::{check_finite, check_scalar, check_shape};

/// f(x) = (1/√m) Σ_r a_r σ(⟨w_r, x⟩), σ(z) = max(z − b, 0): the first layer W (m × d) is
/// trained, the second layer a (m signs) and the threshold b stay fixed.
#[derive(Clone, Debug, PartialEq)]
pub struct ShiftedReluNet {
    w: Vec<f32>,
    a: Vec<f32>,
    d: usize,
    b: f32,
}

impl ShiftedReluNet {
    /// A network from first-layer weights `w` (`m × d`, row-major), output weights `a`
    /// (length m, ±1 in the paper) and threshold `b`.
    pub fn new(w: Vec<f32>, a: Vec<f32>, d: usize, b: f32) -> Result<Self> {
        check_shape("w", w.len(), a.len(), d, "neurons")?;
        check_finite("w", &w)?;
        check_finite("a", &a)?;
        check_scalar("threshold b", b, false)?;
        Ok(ShiftedReluNet { w, a, d, b })
    }

    /// The paper's initialisation: w_r ~ N(0, I_d), a_r uniform in {−1, +1}.
    pub fn random(m: usize, d: usize, b: f32, seed: u64) -> Result<Self> {
        check_shape("network", m.saturating_mul(d), m, d, "neurons")?;
        let mut rng = StdRng::seed_from_u64(seed);
        let w = gaussian_vec(&mut rng, m * d);
        let a = sign_vec(&mut rng, m);
        Self::new(w, a, d, b)
    }

    /// The theory's threshold b = √(0.4 ln m): with unit-norm data and N(0, I) weights about
    /// m^(4/5) neurons fire per point.
    pub fn theory_threshold(m: usize) -> f32 {
        (0.4 * (m.max(1) as f64).ln()).sqrt() as f32
    }

    /// P(⟨w_r, x⟩ > b) for unit-norm x and N(0, I) weights, where ⟨w_r, x⟩ ~ N(0, 1): the
    /// firing fraction k/m to expect at initialisation.
    pub fn expected_firing_fraction(&self) -> f64 {
        normal_tail(f64::from(self.b))
    }

    /// Number of neurons m.
    pub fn width(&self) -> usize {
        self.a.len()
    }

    /// Input dimension d.
    pub fn dim(&self) -> usize {
        self.d
    }

    /// The shift b of σ(z) = max(z − b, 0).
    pub fn threshold(&self) -> f32 {
        self.b
    }

    /// First-layer weights, `m × d` row-major.
    pub fn weights(&self) -> &[f32] {
        &self.w
    }

    /// Second-layer weights a_r.
    pub fn output_weights(&self) -> &[f32] {
        &self.a
    }

    /// The factor 1/√m in front of the sum over neurons.
    pub fn output_scale(&self) -> f32 {
        (self.width() as f32).sqrt().recip()
    }

    /// f(x_i) for each row of `x` (`n × d`), through one gemm.
    pub fn predict(&self, x: &[f32]) -> Result<Vec<f32>> {
        if !x.len().is_multiple_of(self.d) {
            return Err(SeftError::Invalid(format!(
                "x has {} values, not a multiple of the network's dimension {}",
                x.len(),
                self.d
            )));
        }
        let n = x.len() / self.d;
        check_shape("x", x.len(), n, self.d, "points")?;
        check_finite("x", x)?;
        let points = PointMatrix::new(x, n, self.d);
        let (mut rows, mut z) = (Vec::new(), Vec::new());
        let columns = points.all_products(&self.w, self.width(), &mut rows, &mut z);
        let (scale, m) = (self.output_scale(), self.width());
        Ok(z.par_chunks(columns)
            .take(n)
            .map(|z| scale * dense_firing_sum(&z[..m], &self.a, self.b))
            .collect())
    }

    /// The training loss ½ Σ_i (f(x_i) − y_i)².
    pub fn loss(&self, data: &TrainData<'_>) -> Result<f64> {
        self.check_data(data)?;
        let outputs = self.predict(data.x)?;
        let errors: Vec<f32> = outputs.iter().zip(data.y).map(|(f, y)| f - y).collect();
        Ok(half_squared_sum(&errors))
    }

    pub(crate) fn check_data(&self, data: &TrainData<'_>) -> Result<()> {
        if data.d != self.d {
            return Err(SeftError::Invalid(format!(
                "data has dimension {}, the network {}",
                data.d, self.d
            )));
        }
        Ok(())
    }

    pub(crate) fn weights_mut(&mut self) -> &mut [f32] {
        &mut self.w
    }

    /// The weights to update and the output weights that scale their steps.
    pub(crate) fn parts_mut(&mut self) -> (&mut [f32], &[f32]) {
        (&mut self.w, &self.a)
    }
}

/// Training points x_i (`n × d`, row-major) with regression targets y_i.
#[derive(Clone, Copy, Debug)]
pub struct TrainData<'a> {
    x: &'a [f32],
    y: &'a [f32],
    d: usize,
}

impl<'a> TrainData<'a> {
    /// Checks shapes (n = `y.len()` points, at least one) and that every value is finite.
    pub fn new(x: &'a [f32], y: &'a [f32], d: usize) -> Result<Self> {
        check_shape("x", x.len(), y.len(), d, "points (one per target y)")?;
        check_finite("x", x)?;
        check_finite("y", y)?;
        Ok(TrainData { x, y, d })
    }

    /// Number of points n.
    pub fn points(&self) -> usize {
        self.y.len()
    }

    /// Dimension d.
    pub fn dim(&self) -> usize {
        self.d
    }

    /// The points, `n × d` row-major.
    pub fn x(&self) -> &'a [f32] {
        self.x
    }

    /// The targets.
    pub fn y(&self) -> &'a [f32] {
        self.y
    }
}

/// Σ a_r (z_r − b) over the firing neurons, given as (a_r, z_r) in increasing r: the one
/// summation order of every path's forward pass.
pub(crate) fn firing_sum(firing: impl IntoIterator<Item = (f32, f32)>, b: f32) -> f32 {
    firing
        .into_iter()
        .fold(0.0, |sum, (a, z)| sum + a * (z - b))
}

/// [`firing_sum`] over all m products of a point, testing z > b on each.
pub(crate) fn dense_firing_sum(z: &[f32], a: &[f32], b: f32) -> f32 {
    firing_sum(
        z.iter()
            .zip(a)
            .filter(|&(&z, _)| z > b)
            .map(|(&z, &a)| (a, z)),
        b,
    )
}

/// The step factor of neuron r: ∂L/∂w_r = (1/√m) a_r Σ_i e_i x_i over the points firing r.
pub(crate) fn neuron_coef(lr: f32, scale: f32, a_r: f32) -> f32 {
    lr * scale * a_r
}

/// `out = w_r − coef · Σ_{i ∈ points} e_i x_i`, summed in the order of `points`; the tree
/// path and the dense reference both call this, which makes their weights bitwise equal.
pub(crate) fn neuron_step(
    w_r: &[f32],
    points: &[u32],
    errors: &[f32],
    x: &[f32],
    coef: f32,
    out: &mut [f32],
) {
    let d = w_r.len();
    let out = &mut out[..d];
    out.fill(0.0);
    for &i in points {
        let e = errors[i as usize];
        let x_i = &x[i as usize * d..(i as usize + 1) * d];
        for (acc, &v) in out.iter_mut().zip(x_i) {
            *acc += e * v;
        }
    }
    for (acc, &w) in out.iter_mut().zip(w_r) {
        *acc = w - coef * *acc;
    }
}

/// ½ Σ e_i², accumulated in f64 in point order.
pub(crate) fn half_squared_sum(errors: &[f32]) -> f64 {
    0.5 * errors
        .iter()
        .map(|&e| f64::from(e) * f64::from(e))
        .sum::<f64>()
}

/// P(N(0, 1) > t), from erfc (Abramowitz–Stegun 7.1.26, absolute error below 1.5e-7).
fn normal_tail(t: f64) -> f64 {
    let x = t.abs() / std::f64::consts::SQRT_2;
    let s = 1.0 / (1.0 + 0.327_591_1 * x);
    let poly = s
        * (0.254_829_592
            + s * (-0.284_496_736
                + s * (1.421_413_741 + s * (-1.453_152_027 + s * 1.061_405_429))));
    let upper = 0.5 * poly * (-x * x).exp();
    if t >= 0.0 { upper } else { 1.0 - upper }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normal_tail_matches_known_quantiles() {
        for (t, p) in [
            (0.0, 0.5),
            (1.281_551_6, 0.1),
            (2.326_347_9, 0.01),
            (-1.281_551_6, 0.9),
        ] {
            assert!((normal_tail(t) - p).abs() < 1e-6, "{t}: {}", normal_tail(t));
        }
    }

    #[test]
    fn predict_matches_the_formula() {
        let net = ShiftedReluNet::random(300, 6, 0.3, 1).unwrap();
        let x: Vec<f32> = (0..18).map(|k| (k as f32 * 0.37).sin()).collect();
        let out = net.predict(&x).unwrap();
        for (i, &f) in out.iter().enumerate() {
            let mut sum = 0.0f64;
            for r in 0..300 {
                let z: f64 = (0..6)
                    .map(|j| f64::from(net.w[r * 6 + j]) * f64::from(x[i * 6 + j]))
                    .sum();
                sum += f64::from(net.a[r]) * (z - 0.3).max(0.0);
            }
            let expected = sum / 300f64.sqrt();
            assert!((f64::from(f) - expected).abs() < 1e-4, "{f} vs {expected}");
        }
    }

    #[test]
    fn bad_input_is_an_error() {
        let errors = [
            ShiftedReluNet::new(vec![0.0; 5], vec![1.0; 2], 3, 0.0).err(),
            ShiftedReluNet::new(vec![], vec![], 3, 0.0).err(),
            ShiftedReluNet::new(vec![0.0; 6], vec![1.0; 2], 3, f32::NAN).err(),
            ShiftedReluNet::new(vec![f32::NAN; 6], vec![1.0; 2], 3, 0.0).err(),
            ShiftedReluNet::random(0, 3, 0.0, 1).err(),
            ShiftedReluNet::random(4, 0, 0.0, 1).err(),
            TrainData::new(&[0.0; 5], &[1.0, 2.0], 3).err(),
            TrainData::new(&[], &[], 3).err(),
            TrainData::new(&[0.0; 3], &[f32::NAN], 3).err(),
            TrainData::new(&[f32::INFINITY; 3], &[1.0], 3).err(),
        ];
        for (case, error) in errors.into_iter().enumerate() {
            let message = error
                .unwrap_or_else(|| panic!("case {case} accepted"))
                .to_string();
            assert!(!message.contains('\n'), "{message}");
        }
        let net = ShiftedReluNet::random(4, 3, 0.0, 1).unwrap();
        assert!(net.predict(&[0.0; 4]).is_err());
        assert!(net.predict(&[]).is_err());
        assert!(net.predict(&[f32::NAN; 3]).is_err());
        let data = TrainData::new(&[0.0; 4], &[1.0, 2.0], 2).unwrap();
        assert!(net.loss(&data).is_err());
    }
}
