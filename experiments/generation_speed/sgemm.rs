//! Single-matmul throughput of Burn's flex backend (gemm crate) for the linear-layer shapes of
//! SmolLM2, in two orientations: `x · W` (Burn's `Linear`) and `(Wᵀ · xᵀ)ᵀ` (the weight as the
//! left, column-major operand, which the gemm crate reads without packing), plus `x · W` with x
//! split into 4 row blocks as one batched matmul (flex runs a batch of ≥ 4 as single-threaded
//! GEMMs spread over the threads), and the weight gradient `xᵀ · dy` both ways; then both
//! products through `seft::fused::matmul_2d` (one single-threaded GEMM per thread on a panel of
//! the output, what seft's linear layers use). Compare with `torch.matmul` in sgemm_torch.py.
//! Run: `cargo run --release --example sgemm`.
use std::time::Instant;

use burn::tensor::{Device, Distribution, Tensor};
use seft::fused::matmul_2d;

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
    println!(
        "| m | k | n | x·W GFLOP/s | (Wᵀ·xᵀ)ᵀ GFLOP/s | x·W, 4 blocks | xᵀ·dy | xᵀ·dy, 4 blocks | x·W, panels | xᵀ·dy, panels |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|");
    for m in [1, 8, 256, 512, 1024] {
        for (k, n) in [
            (576, 1536),
            (1536, 576),
            (576, 576),
            (576, 192),
            (576, 49152),
        ] {
            if n > 2000 && m < 1024 {
                continue;
            }
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
            let panels = time(reps, || {
                let _ = matmul_2d(x.clone(), w.clone()).into_data();
            });
            let (mut blocked, mut grad, mut grad_blocked, mut grad_panels) =
                (f64::NAN, f64::NAN, f64::NAN, f64::NAN);
            if m >= 256 {
                let w3 = w.clone().unsqueeze::<3>();
                blocked = time(reps, || {
                    let out = x.clone().reshape([4, m / 4, k]).matmul(w3.clone());
                    let _ = out.into_data();
                });
                let dy = Tensor::<2>::random([m, n], Distribution::Default, &device);
                grad = time(reps, || {
                    let _ = x.clone().transpose().matmul(dy.clone()).into_data();
                });
                grad_panels = time(reps, || {
                    let _ = matmul_2d(x.clone().transpose(), dy.clone()).into_data();
                });
                grad_blocked = time(reps, || {
                    let xt = x.clone().reshape([4, m / 4, k]).swap_dims(1, 2);
                    let out = xt.matmul(dy.clone().reshape([4, m / 4, n])).sum_dim(0);
                    let _ = out.into_data();
                });
            }
            println!(
                "| {m} | {k} | {n} | {:.1} | {:.1} | {:.1} | {:.1} | {:.1} | {:.1} | {:.1} |",
                flop / direct,
                flop / flipped,
                flop / blocked,
                flop / grad,
                flop / grad_blocked,
                flop / panels,
                flop / grad_panels
            );
        }
    }
}
