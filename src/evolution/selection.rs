//! Which unannotated prompts each SEFT iteration spends compute on. Every selector works on
//! embeddings of the prompt pool and returns, for iterations 1..=T, disjoint-as-possible sets
//! of `per_iteration` prompts, deterministically from the seed (so a resumed run selects the
//! same prompts):
//!
//! - `random`: consecutive slices of one seeded shuffle;
//! - `kmeans`: FastKmeans++ (+ Lloyd) clusters the pool into `per_iteration` clusters; each
//!   iteration takes one unused prompt from every cluster, nearest its centroid first, so every
//!   kind of prompt is covered;
//! - `kde`: a dynamic KDE holds the prompts already used; each iteration takes the unused
//!   prompts of lowest density, i.e. least like what the policy was already trained on
//!   (iteration 1, with nothing used yet, is random);
//! - `kmeans+kde`: one prompt per cluster, the one of lowest density within it.

use std::time::Instant;

use rand::{SeedableRng, rngs::StdRng, seq::SliceRandom};
use serde::{Deserialize, Serialize};

use crate::embed::TextEmbedder;
use crate::error::{Result, SeftError};
use crate::evolution::data::PromptRow;
use crate::evolution::layout::{files, stages};
use crate::evolution::stage::Run;
use crate::numeric::Matrix;
use crate::select::kde::{DynamicKde, DynamicKdeParams, Kernel};
use crate::select::kmeans::{KMeans, KMeansParams, Seeding};

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Selector {
    /// A seeded shuffle of the pool, consumed slice by slice.
    #[default]
    #[serde(rename = "random")]
    Random,
    /// Cover every k-means cluster of the pool in each iteration.
    #[serde(rename = "kmeans")]
    Kmeans,
    /// Prefer prompts far from those already used (dynamic KDE).
    #[serde(rename = "kde")]
    Kde,
    /// One prompt per cluster, the least covered one in it.
    #[serde(rename = "kmeans+kde")]
    KmeansKde,
}

impl std::str::FromStr for Selector {
    type Err = SeftError;

    fn from_str(name: &str) -> Result<Self> {
        match name {
            "random" => Ok(Selector::Random),
            "kmeans" => Ok(Selector::Kmeans),
            "kde" => Ok(Selector::Kde),
            "kmeans+kde" => Ok(Selector::KmeansKde),
            other => Err(SeftError::Invalid(format!(
                "unknown selector {other:?} (expected random, kmeans, kde or kmeans+kde)"
            ))),
        }
    }
}

impl Selector {
    /// Whether this selector needs embeddings of the pool.
    pub fn needs_embeddings(self) -> bool {
        self != Selector::Random
    }
}

/// What the report shows about a selection.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SelectionStats {
    pub selector: Selector,
    /// Seed of the pool's k-means clustering.
    pub seed: u64,
    pub seconds: f64,
    /// Clusters (k-means of the pool, k = prompts per iteration) hit by each iteration's
    /// prompts, as a share of k. Computed for every selector, so they can be compared.
    pub coverage_per_iteration: Vec<f64>,
    pub mean_coverage: f64,
}

/// The outcome of the selection stage (selection/done.json).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Selection {
    /// Pool indices of each iteration's prompts.
    pub iterations: Vec<Vec<usize>>,
    pub stats: Option<SelectionStats>,
    /// What embedded the pool (None: no embeddings).
    pub embedder: Option<String>,
    pub embed_seconds: f64,
}

/// Kinds of prompts the report tells apart when it shows which ones the reviser changed.
pub const REPORT_CLUSTERS: usize = 8;

/// The report's view: selection statistics and, when the pool was embedded, which clusters
/// of prompts the reviser changed most.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SelectionReport {
    pub selector: Selector,
    pub embedder: Option<String>,
    pub embed_seconds: f64,
    pub stats: Option<SelectionStats>,
    /// Per k-means cluster of the pool (k = REPORT_CLUSTERS): prompts the SEFT reviser saw,
    /// share it revised, an example prompt; most revised first.
    pub revised_by_cluster: Vec<ClusterRevisions>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClusterRevisions {
    pub cluster: usize,
    pub prompts: usize,
    pub revised_share: f64,
    pub example: String,
}

impl SelectionReport {
    /// `revised`: (prompt id, changed by the reviser) for every revision of the SEFT arm.
    pub fn new(
        selection: &Selection,
        pool: &[PromptRow],
        revised: &[(String, bool)],
        embeddings: Option<&Matrix>,
    ) -> Result<Self> {
        let mut revised_by_cluster = Vec::new();
        if let (Some(stats), Some(x)) = (&selection.stats, embeddings) {
            let clusters = KMeansParams::new(REPORT_CLUSTERS.min(x.n()))
                .seed(stats.seed)
                .method(Seeding::Fast)
                .lloyd_iters(10)
                .fit(x)?;
            let index: std::collections::HashMap<&str, usize> = pool
                .iter()
                .enumerate()
                .map(|(i, p)| (p.id.as_str(), i))
                .collect();
            let mut counts = vec![(0usize, 0usize, None::<usize>); clusters.centroids().n()];
            for (id, changed) in revised {
                if let Some(&i) = index.get(id.as_str()) {
                    let c = &mut counts[clusters.labels()[i]];
                    c.0 += 1;
                    c.1 += *changed as usize;
                    c.2.get_or_insert(i);
                }
            }
            revised_by_cluster = counts
                .into_iter()
                .enumerate()
                .filter(|(_, c)| c.0 > 0)
                .map(|(cluster, (seen, changed, example))| ClusterRevisions {
                    cluster,
                    prompts: seen,
                    revised_share: changed as f64 / seen as f64,
                    example: example
                        .map(|i| pool[i].prompt.chars().take(60).collect())
                        .unwrap_or_default(),
                })
                .collect();
            revised_by_cluster.sort_by(|a, b| {
                b.revised_share
                    .total_cmp(&a.revised_share)
                    .then(a.cluster.cmp(&b.cluster))
            });
        }
        Ok(SelectionReport {
            selector: selection
                .stats
                .as_ref()
                .map_or(Selector::Random, |s| s.selector),
            embedder: selection.embedder.clone(),
            embed_seconds: selection.embed_seconds,
            stats: selection.stats.clone(),
            revised_by_cluster,
        })
    }

    pub fn markdown(&self) -> String {
        let mut s = format!(
            "## Prompt selection

Selector: {:?}",
            self.selector
        );
        if let Some(e) = &self.embedder {
            s.push_str(&format!("; embeddings: {e} ({:.1} s)", self.embed_seconds));
        }
        if let Some(st) = &self.stats {
            s.push_str(&format!(
                "; selection {:.2} s; cluster coverage per iteration (k-means of the pool, k = prompts per iteration): {} (mean {:.0}%)",
                st.seconds,
                st.coverage_per_iteration.iter().map(|c| format!("{:.0}%", 100.0 * c)).collect::<Vec<_>>().join(", "),
                100.0 * st.mean_coverage
            ));
        }
        s.push_str(
            ".
",
        );
        if !self.revised_by_cluster.is_empty() {
            s.push_str("
Which kinds of prompts the SEFT reviser changed (minor/major), by k-means cluster of the pool (k = 8):

| cluster | prompts | revised | example prompt |
|---|---|---|---|
");
            for c in &self.revised_by_cluster {
                s.push_str(&format!(
                    "| {} | {} | {:.0}% | {} |
",
                    c.cluster,
                    c.prompts,
                    100.0 * c.revised_share,
                    c.example.replace('|', "/").replace('\n', " ")
                ));
            }
        }
        s
    }
}

/// The selected pool indices of each iteration and the statistics.
pub fn select(
    selector: Selector,
    embeddings: Option<&Matrix>,
    pool_len: usize,
    per_iteration: usize,
    iterations: usize,
    seed: u64,
) -> Result<(Vec<Vec<usize>>, Option<SelectionStats>)> {
    if pool_len == 0 {
        return Err(SeftError::Invalid("the prompt pool is empty".into()));
    }
    let n = per_iteration.min(pool_len);
    let started = Instant::now();
    let mut order: Vec<usize> = (0..pool_len).collect();
    order.shuffle(&mut StdRng::seed_from_u64(seed ^ 0x5e1ec7));
    let random: Vec<Vec<usize>> = (1..=iterations)
        .map(|t| {
            (0..n)
                .map(|k| order[((t - 1) * n + k) % pool_len])
                .collect()
        })
        .collect();
    let Some(x) = embeddings else {
        if selector.needs_embeddings() {
            return Err(SeftError::Invalid(format!(
                "the {selector:?} selector needs prompt embeddings"
            )));
        }
        return Ok((random, None));
    };
    if x.n() != pool_len {
        return Err(SeftError::Invalid(format!(
            "{} embeddings for {pool_len} prompts",
            x.n()
        )));
    }
    let clusters = KMeansParams::new(n)
        .seed(seed)
        .method(Seeding::Fast)
        .lloyd_iters(10)
        .fit(x)?;
    let chosen = match selector {
        Selector::Random => random,
        Selector::Kmeans => by_cluster(x, &clusters, iterations, seed, false)?,
        Selector::Kde => by_density(x, &order, n, iterations, seed)?,
        Selector::KmeansKde => by_cluster(x, &clusters, iterations, seed, true)?,
    };
    let coverage: Vec<f64> = chosen
        .iter()
        .map(|picks| {
            let mut hit = vec![false; n];
            for &i in picks {
                hit[clusters.labels()[i]] = true;
            }
            hit.iter().filter(|h| **h).count() as f64 / n as f64
        })
        .collect();
    let stats = SelectionStats {
        selector,
        seed,
        seconds: started.elapsed().as_secs_f64(),
        mean_coverage: coverage.iter().sum::<f64>() / coverage.len().max(1) as f64,
        coverage_per_iteration: coverage,
    };
    Ok((chosen, Some(stats)))
}

fn distance2(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum()
}

/// The median distance between a sample of pairs: a bandwidth that is neither so small that
/// every density is 0 nor so large that every density is 1.
fn median_distance(x: &Matrix, seed: u64) -> f32 {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut idx: Vec<usize> = (0..x.n()).collect();
    idx.shuffle(&mut rng);
    let m = idx.len().min(200);
    let mut d: Vec<f32> = Vec::new();
    for a in 0..m {
        for b in a + 1..m {
            d.push(distance2(x.row(idx[a]), x.row(idx[b])).sqrt());
        }
    }
    if d.is_empty() {
        return 1.0;
    }
    d.sort_by(f32::total_cmp);
    d[d.len() / 2].max(1e-6)
}

fn new_kde(x: &Matrix, seed: u64) -> Result<DynamicKde> {
    DynamicKdeParams::new(Kernel::Laplacian, median_distance(x, seed))
        .epsilon(0.5)
        .delta(0.1)
        .tau(0.01)
        .seed(seed)
        .build(x.d())
}

/// Iteration 1 takes the first slice of the shuffle; later ones the unused prompts of lowest
/// density under the KDE of everything used so far.
fn by_density(
    x: &Matrix,
    order: &[usize],
    n: usize,
    iterations: usize,
    seed: u64,
) -> Result<Vec<Vec<usize>>> {
    let mut kde = new_kde(x, seed)?;
    let mut used = vec![false; x.n()];
    let mut out = Vec::with_capacity(iterations);
    for _ in 0..iterations {
        if used.iter().all(|u| *u) {
            used.iter_mut().for_each(|u| *u = false);
        }
        let picks: Vec<usize> = if kde.is_empty() {
            order
                .iter()
                .copied()
                .filter(|&i| !used[i])
                .take(n)
                .collect()
        } else {
            let mut scored: Vec<(f64, usize)> = order
                .iter()
                .copied()
                .filter(|&i| !used[i])
                .map(|i| kde.query(x.row(i)).map(|e| (e.density, i)))
                .collect::<Result<_>>()?;
            scored.sort_by(|a, b| a.0.total_cmp(&b.0));
            scored.into_iter().take(n).map(|(_, i)| i).collect()
        };
        for &i in &picks {
            used[i] = true;
            kde.insert(x.row(i))?;
        }
        out.push(picks);
    }
    Ok(out)
}

/// One prompt per cluster per iteration: the nearest unused member to the centroid, or (with
/// `by_kde`) the unused member of lowest density under what was used so far.
fn by_cluster(
    x: &Matrix,
    clusters: &KMeans,
    iterations: usize,
    seed: u64,
    by_kde: bool,
) -> Result<Vec<Vec<usize>>> {
    let k = clusters.centroids().n();
    let mut members: Vec<Vec<usize>> = vec![Vec::new(); k];
    for (i, &c) in clusters.labels().iter().enumerate() {
        members[c].push(i);
    }
    for (c, m) in members.iter_mut().enumerate() {
        let centroid = clusters.centroids().row(c);
        m.sort_by(|&a, &b| {
            distance2(x.row(a), centroid)
                .total_cmp(&distance2(x.row(b), centroid))
                .then(a.cmp(&b))
        });
    }
    let mut kde = if by_kde {
        Some(new_kde(x, seed)?)
    } else {
        None
    };
    let mut used = vec![false; x.n()];
    let mut out = Vec::with_capacity(iterations);
    for _ in 0..iterations {
        let mut picks = Vec::with_capacity(k);
        for m in members.iter().filter(|m| !m.is_empty()) {
            if m.iter().all(|&i| used[i]) {
                m.iter().for_each(|&i| used[i] = false);
            }
            let unused = m.iter().copied().filter(|&i| !used[i]);
            let pick = match &kde {
                Some(kde) if !kde.is_empty() => {
                    let mut best: Option<(f64, usize)> = None;
                    for i in unused {
                        let d = kde.query(x.row(i))?.density;
                        if best.is_none_or(|(b, _)| d < b) {
                            best = Some((d, i));
                        }
                    }
                    best.map(|(_, i)| i)
                }
                _ => unused.into_iter().next(),
            };
            if let Some(i) = pick {
                used[i] = true;
                picks.push(i);
            }
        }
        if let Some(kde) = kde.as_mut() {
            for &i in &picks {
                kde.insert(x.row(i))?;
            }
        }
        out.push(picks);
    }
    Ok(out)
}

/// Prompt tokens an embedding looks at (prompts are short; longer ones are cut).
const EMBED_MAX_TOKENS: usize = 256;

/// The selection stage: embeds the pool (when the selector or the report needs it, into
/// `selection/pool_embeddings.npy`) and chooses every iteration's prompts up front, so a
/// resumed run reuses exactly the same choice.
pub fn selection_stage(
    run: &Run,
    start: &str,
    pool: &[PromptRow],
) -> Result<(Selection, Option<Matrix>)> {
    let embeddings_file = |dir: &std::path::Path| dir.join(files::POOL_EMBEDDINGS);
    run.stage_with(
        stages::SELECTION,
        "select the evolution prompts",
        |dir| {
            let evolution = &run.cfg.evolution;
            let spec = match (&evolution.embedder, evolution.selector.needs_embeddings()) {
                (Some(e), _) if e == "policy" => Some(start.to_string()),
                (Some(e), _) => Some(e.clone()),
                (None, true) => Some(start.to_string()),
                (None, false) => None,
            };
            let started = Instant::now();
            let embeddings = match &spec {
                Some(spec) => {
                    let embedder = TextEmbedder::load(spec, &run.device, EMBED_MAX_TOKENS)?;
                    let texts: Vec<String> = pool.iter().map(|p| p.prompt.clone()).collect();
                    let rows = embedder.embed(&texts, evolution.batch_size.max(1))?;
                    let m = Matrix::from_rows(&rows)?;
                    m.write_npy(&embeddings_file(dir))?;
                    Some(m)
                }
                None => None,
            };
            let embed_seconds = started.elapsed().as_secs_f64();
            let (iterations, stats) = select(
                evolution.selector,
                embeddings.as_ref(),
                pool.len(),
                evolution.prompts_per_iteration,
                run.cfg.iterations,
                run.cfg.seed,
            )?;
            let selection = Selection {
                iterations,
                stats,
                embedder: spec,
                embed_seconds,
            };
            Ok((selection, embeddings))
        },
        |dir| {
            let path = embeddings_file(dir);
            path.exists().then(|| Matrix::read_npy(&path)).transpose()
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Four tight groups of 30 points, the first group three times as large.
    fn groups() -> Matrix {
        let mut rows = Vec::new();
        for (g, size) in [(0usize, 90usize), (1, 30), (2, 30), (3, 30)] {
            for i in 0..size {
                let mut r = vec![0f32; 4];
                r[g] = 10.0;
                r[(g + 1) % 4] = (i % 7) as f32 * 0.01;
                rows.push(r);
            }
        }
        Matrix::from_rows(&rows).unwrap()
    }

    #[test]
    fn kmeans_covers_every_cluster_and_random_does_not_always() {
        let x = groups();
        let (picks, stats) = select(Selector::Kmeans, Some(&x), x.n(), 4, 3, 7).unwrap();
        let stats = stats.unwrap();
        assert!(
            stats.coverage_per_iteration.iter().all(|c| *c == 1.0),
            "{stats:?}"
        );
        assert!(picks.iter().all(|p| p.len() == 4));
        // Disjoint across iterations while clusters have unused members.
        let mut all: Vec<usize> = picks.concat();
        all.sort();
        all.dedup();
        assert_eq!(all.len(), 12);
        let (_, random) = select(Selector::Random, Some(&x), x.n(), 4, 20, 7).unwrap();
        assert!(random.unwrap().mean_coverage < 1.0);
    }

    #[test]
    fn kde_moves_to_regions_not_yet_used() {
        let x = groups();
        let (picks, _) = select(Selector::Kde, Some(&x), x.n(), 10, 4, 1).unwrap();
        let group = |i: usize| (0..4).find(|&g| x.row(i)[g] == 10.0).unwrap();
        // After iteration 1, each iteration's prompts avoid the group used most so far.
        let mut counts = [0usize; 4];
        for p in &picks[0] {
            counts[group(*p)] += 1;
        }
        let most = (0..4).max_by_key(|&g| counts[g]).unwrap();
        let later = picks[1].iter().filter(|&&i| group(i) == most).count();
        assert!(later < counts[most], "{counts:?} then {later}");
    }

    #[test]
    fn selection_is_deterministic_and_rejects_bad_input() {
        let x = groups();
        for s in [
            Selector::Random,
            Selector::Kmeans,
            Selector::Kde,
            Selector::KmeansKde,
        ] {
            let a = select(s, Some(&x), x.n(), 5, 3, 3).unwrap().0;
            let b = select(s, Some(&x), x.n(), 5, 3, 3).unwrap().0;
            assert_eq!(a, b, "{s:?}");
        }
        assert!(select(Selector::Kmeans, None, 10, 2, 1, 0).is_err());
        assert!(select(Selector::Kmeans, Some(&x), 7, 2, 1, 0).is_err());
        assert!(select(Selector::Random, None, 0, 2, 1, 0).is_err());
    }
}
