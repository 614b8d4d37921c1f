//! Single-matmul throughput of Burn's flex backend (gemm crate) for the linear-layer shapes of
//! SmolLM2, in two orientations: `x · W` (Burn's `Linear`) and `(Wᵀ · xᵀ)ᵀ` (the weight as the
//! left, column-major operand, which the gemm crate reads without packing). Compare with
//! `torch.matmul` in sgemm_torch.py. Run: `cargo run --release --example sgemm`.
use std::time::Instant;

use burn::tensor::{Device, Distribution, Tensor};

fn time(reps: usize, f: impl Fn()) -> f64 {
    f();
    let started = Instant::now();
    for _ in 0..reps {
        f();
    }
    started.elapsed().as_secs_f64() / reps as f64
}

fn main() {
    let device = Device::flex();
    println!("| m | k | n | x·W GFLOP/s | (Wᵀ·xᵀ)ᵀ GFLOP/s |");
    println!("|---|---|---|---|---|");
    for m in [1, 8, 256, 512, 1024] {
        for (k, n) in [(576, 1536), (1536, 576), (576, 576), (576, 192)] {
            let x = Tensor::<2>::random([m, k], Distribution::Default, &device);
            let w = Tensor::<2>::random([k, n], Distribution::Default, &device);
            let reps = if m < 64 { 200 } else { 20 };
            let direct = time(reps, || {
                let _ = x.clone().matmul(w.clone()).into_data();
            });
            let flipped = time(reps, || {
                let out = w
                    .clone()
                    .transpose()
                    .matmul(x.clone().transpose())
                    .transpose();
                let _ = out.into_data();
            });
            let flop = 2.0 * (m as f64) * (k as f64) * (n as f64) / 1e9;
            println!(
                "| {m} | {k} | {n} | {:.1} | {:.1} |",
                flop / direct,
                flop / flipped
            );
        }
    }
}
