//! The dynamic KDE against exact KDE: errors, updates, adaptive queries, and the pieces a
//! query is made of.

use super::*;
use crate::select::kde::ExactKdeParams;
use crate::select::synthetic::gaussian_blobs;

fn relative_errors(
    kde: &DynamicKde,
    data_now: &Matrix,
    queries: &Matrix,
    h: f32,
) -> Vec<(f64, f64)> {
    let exact = ExactKdeParams::new(Kernel::Gaussian, h)
        .fit(data_now)
        .unwrap();
    let truth = exact.query_batch(queries).unwrap();
    queries
        .data()
        .chunks_exact(queries.d())
        .zip(truth)
        .map(|(q, t)| {
            let estimate = kde.query(q).unwrap().density;
            (t, (estimate - t).abs() / t)
        })
        .collect()
}

fn held_rows(kde: &DynamicKde) -> Matrix {
    let rows: Vec<Vec<f32>> = (0..kde.live.len())
        .filter_map(|id| kde.point(id).map(<[f32]>::to_vec))
        .collect();
    Matrix::from_rows(&rows).unwrap()
}

#[test]
fn error_within_epsilon_after_inserts_and_deletes() {
    let (epsilon, delta, tau, h) = (0.5, 0.1, 0.05, 2.5f32);
    let data = gaussian_blobs(3000, 4, 5, 21).unwrap();
    let params = DynamicKdeParams::new(Kernel::Gaussian, h)
        .epsilon(epsilon)
        .delta(delta)
        .tau(tau)
        .seed(3);
    // Bulk-build from the first 2000 rows, insert 1000 more, delete 1200.
    let first = data.select_rows(&(0..2000).collect::<Vec<_>>());
    let mut kde = params.fit(&first).unwrap();
    for i in 2000..3000 {
        assert_eq!(kde.insert(data.row(i)).unwrap(), i);
    }
    for id in (0..3000).step_by(5).chain((1..3000).step_by(5)) {
        kde.delete(id).unwrap();
    }
    assert_eq!(kde.len(), 1800);
    let held = held_rows(&kde);
    // Queries: held points and jittered copies of them, so densities span a wide range.
    let queries: Vec<Vec<f32>> = (0..150)
        .map(|i| {
            held.row(i * 11)
                .iter()
                .map(|v| v + (i % 3) as f32 * 0.7)
                .collect()
        })
        .collect();
    let queries = Matrix::from_rows(&queries).unwrap();
    let results = relative_errors(&kde, &held, &queries, h);
    let relevant: Vec<f64> = results
        .iter()
        .filter(|(t, _)| *t >= tau)
        .map(|r| r.1)
        .collect();
    assert!(
        relevant.len() > 100,
        "only {} queries above τ",
        relevant.len()
    );
    let within = relevant.iter().filter(|&&e| e <= epsilon).count();
    let fraction = within as f64 / relevant.len() as f64;
    assert!(fraction >= 1.0 - delta, "only {fraction:.3} within ε");
    // The batched (queries in parallel) path gives the same estimates.
    let batch = kde.query_batch(&queries).unwrap();
    for (i, b) in batch.iter().enumerate() {
        let single = kde.query(queries.row(i)).unwrap();
        assert_eq!((single.density, single.guess), (b.density, b.guess));
    }
}

#[test]
fn low_recall_estimates_stay_unbiased() {
    // Half of the points at a level's outer radius are missed; weighting counted points by
    // 1/P[found by levels 1..=b] must keep the average estimate (over independent
    // structures) on target. (Measured: 0.997; with weights 1, 0.79; with level b's own
    // find probability instead, which ignores the nearer levels, 1.11.)
    let (h, tau) = (2.5f32, 0.05);
    let data = gaussian_blobs(2000, 4, 4, 9).unwrap();
    let queries = data.select_rows(&(0..20).map(|i| i * 97).collect::<Vec<_>>());
    let truth = ExactKdeParams::new(Kernel::Gaussian, h)
        .fit(&data)
        .unwrap()
        .query_batch(&queries)
        .unwrap();
    let params = |seed| {
        DynamicKdeParams::new(Kernel::Gaussian, h)
            .epsilon(0.3)
            .tau(tau)
            .copies(1)
            .samples_per_level(200)
            .lsh_recall(0.5)
            .seed(seed)
    };
    let plan = params(0).plan().unwrap();
    let outer_weight = *plan.band_find_weights[0].last().unwrap();
    assert!(outer_weight > 1.25 && outer_weight <= 2.0, "{outer_weight}");
    let mut ratios = Vec::new();
    for seed in 0..30 {
        let kde = params(seed).fit(&data).unwrap();
        for (estimate, t) in kde.query_batch(&queries).unwrap().iter().zip(&truth) {
            ratios.push(estimate.density / t);
        }
    }
    let mean = ratios.iter().sum::<f64>() / ratios.len() as f64;
    assert!((mean - 1.0).abs() < 0.04, "mean estimate/truth {mean:.4}");
}

#[test]
fn guesses_read_together_answer_as_one_at_a_time() {
    // A pass reading several guesses must file every point under the guess that reads
    // it first: each guess's estimate, and so the answer, equals that of one guess per
    // pass.
    let data = gaussian_blobs(20_000, 8, 10, 4).unwrap();
    let queries = data.select_rows(&(0..60).map(|i| i * 331).collect::<Vec<_>>());
    let mut kde = DynamicKdeParams::new(Kernel::Gaussian, 4.0)
        .epsilon(0.2)
        .tau(0.01)
        .copies(3)
        .samples_per_level(60)
        .fit(&data)
        .unwrap();
    // The default budget merges guesses here (the first ones read little).
    let copy = &kde.copies[0];
    let new_state = |query| QueryState::new(copy, &kde.plan, query, kde.d, kde.live.len());
    let mut schedule = GuessSchedule::new(&kde, &[new_state(queries.row(0))]);
    assert!(schedule.pass_end(0, 0) >= 2);
    // Per guess, one pass over guesses 0..=last against one pass per guess.
    let last = kde.plan.guesses - 1;
    schedule.reach(last);
    let n = kde.len as f64;
    let mut informative = 0;
    for q in 0..queries.n() {
        let query = queries.row(q);
        let mut together = new_state(query);
        together.advance(&kde, query, schedule.rates(0..last + 1), n);
        let mut one_by_one = new_state(query);
        for g in 0..=last {
            one_by_one.advance(&kde, query, schedule.rates(g..g + 1), n);
            let (a, b) = (
                together.scratch.estimates[g],
                one_by_one.scratch.estimates[0],
            );
            assert!(
                (a - b).abs() <= 1e-6 * b.abs().max(1e-9),
                "guess {g}: {a} vs {b}"
            );
            informative +=
                usize::from(g < last && b > 0.0 && b != together.scratch.estimates[last]);
        }
        assert_eq!(together.candidates, one_by_one.candidates);
    }
    assert!(informative > 20, "{informative} informative guesses");
    let together = kde.query_batch(&queries).unwrap();
    kde.read_ahead_samples = 0.0;
    let one_by_one = kde.query_batch(&queries).unwrap();
    for (a, b) in together.iter().zip(&one_by_one) {
        assert_eq!(a.guess, b.guess);
        assert_eq!(a.below_tau, b.below_tau);
        let scale = a.density.abs().max(1e-12);
        assert!(
            (a.density - b.density).abs() <= 1e-5 * scale,
            "{a:?} vs {b:?}"
        );
        // Reading ahead can only read more.
        assert!(a.candidates >= b.candidates);
    }
}

#[test]
fn deleting_everything_then_reinserting_works() {
    let data = gaussian_blobs(200, 3, 2, 4).unwrap();
    let params = DynamicKdeParams::new(Kernel::Laplacian, 2.0)
        .epsilon(0.5)
        .tau(0.05);
    let mut kde = params.build(3).unwrap();
    for i in 0..200 {
        kde.insert(data.row(i)).unwrap();
    }
    for id in 0..200 {
        kde.delete(id).unwrap();
    }
    assert!(kde.is_empty());
    assert_eq!(kde.stored_entries(), 0);
    assert!(kde.query(data.row(0)).is_err());
    let id = kde.insert(data.row(5)).unwrap();
    let estimate = kde.query(data.row(5)).unwrap();
    assert!((estimate.density - 1.0).abs() < 1e-6, "{estimate:?}");
    assert!(kde.point(id).is_some());
    assert!(kde.memory_bytes() > 0);
}

#[test]
fn id_bits_dedupe_and_clear_only_what_was_read() {
    let mut seen = IdBits::EMPTY;
    // Ids spread like point ids, including both ends of a word and the last slot.
    let slots = 1_000_003;
    let mut ids: Vec<u32> = (0..10_000u32)
        .map(|i| i.wrapping_mul(7919) % slots as u32)
        .collect();
    ids.extend([0, 63, 64, slots as u32 - 1]);
    ids.sort_unstable();
    ids.dedup();
    seen.reserve_ids(slots);
    for &id in &ids {
        assert!(seen.insert(id), "id {id} new");
    }
    for &id in &ids {
        assert!(!seen.insert(id), "id {id} kept");
    }
    // Clearing the ids read leaves every word empty; a reserve for fewer slots keeps
    // the table.
    seen.clear(ids.iter().copied());
    assert!(seen.words.iter().all(|&w| w == 0));
    seen.reserve_ids(10);
    assert_eq!(seen.words.len(), slots.div_ceil(64));
    // The per-thread pool hands back cleared scratch and stays bounded.
    let mut scratch = Scratch::take();
    scratch.seen = seen;
    for &id in &ids[..100] {
        assert!(scratch.seen.insert(id));
        scratch.fresh.push((id, 0));
    }
    scratch.values.push(1.0);
    scratch.recycle();
    let mut reused = Scratch::take();
    assert!(reused.fresh.is_empty() && reused.values.is_empty());
    reused.seen.reserve_ids(slots);
    assert!(ids[..100].iter().all(|&id| reused.seen.insert(id)));
    for _ in 0..3 * Scratch::POOL_CAPACITY {
        Scratch::EMPTY.recycle();
    }
    let pooled = SCRATCH_POOL.with(|pool| pool.borrow().len());
    assert!(pooled <= Scratch::POOL_CAPACITY, "{pooled} scratch pooled");
}

#[test]
fn inline_floor_and_powers_of_two_are_exact() {
    for v in [
        0.0f32,
        0.5,
        1.0,
        1.5,
        -0.5,
        -1.0,
        -1.5,
        7.999,
        -7.999,
        1e9,
        -1e9,
        3e9,
        -3e9,
        f32::INFINITY,
        f32::NEG_INFINITY,
        f32::MAX,
        f32::MIN,
    ] {
        let limit = (1u32 << 30) as f32;
        let expected = v.floor().clamp(-limit, limit) as i32;
        assert_eq!(floor_to_i32(v), expected, "{v}");
    }
    assert_eq!(floor_to_i32(f32::NAN).abs(), 1 << 30);
    for e in -60..60 {
        assert_eq!(power_of_two(e), 2f64.powi(e), "{e}");
    }
}

#[test]
fn bad_input_is_an_error() {
    let params = DynamicKdeParams::new(Kernel::Gaussian, 1.0);
    assert!(
        DynamicKdeParams::new(Kernel::Gaussian, 0.0)
            .build(2)
            .is_err()
    );
    assert!(
        DynamicKdeParams::new(Kernel::Gaussian, -1.0)
            .build(2)
            .is_err()
    );
    assert!(params.clone().epsilon(0.0).build(2).is_err());
    assert!(params.clone().tau(0.0).build(2).is_err());
    assert!(params.build(0).is_err());
    let mut kde = params.clone().epsilon(0.5).tau(0.1).build(2).unwrap();
    assert!(kde.insert(&[1.0]).is_err());
    assert!(kde.insert(&[1.0, f32::NAN]).is_err());
    kde.insert(&[1.0, 2.0]).unwrap();
    assert!(kde.query(&[1.0, 2.0, 3.0]).is_err());
    assert!(kde.query(&[f32::INFINITY, 2.0]).is_err());
    assert!(kde.delete(7).is_err());
    kde.delete(0).unwrap();
    assert!(kde.delete(0).is_err());
}
