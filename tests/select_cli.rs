//! `seft cluster` and `seft select`: the contract (one JSON object with
//! seeding_seconds and seeding_cost), the selectors on .npy and text input, and clear errors
//! on bad input.

mod common;

use std::path::Path;

/// A minimal little-endian C-order .npy writer, independent of seft's own.
fn write_npy(path: &Path, descr: &str, shape: &[usize], bytes: &[u8]) {
    let shape_text = match shape {
        [n] => format!("({n},)"),
        dims => format!(
            "({})",
            dims.iter()
                .map(|d| d.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    let mut header =
        format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape_text}, }}");
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let mut out = b"\x93NUMPY\x01\x00".to_vec();
    out.extend((header.len() as u16).to_le_bytes());
    out.extend(header.as_bytes());
    out.extend(bytes);
    std::fs::write(path, out).unwrap();
}

fn f64_bytes(v: &[f64]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

fn cluster(input: &Path, extra: &[&str]) -> std::process::Output {
    seft("cluster", input, extra)
}

/// Three tight groups of 20 points in 2-D (rows 0–19, 20–39, 40–59): any sensible seeding of
/// k = 3 finds them.
fn three_groups(path: &Path) {
    let mut v = Vec::new();
    for (cx, cy) in [(0.0, 0.0), (10.0, 0.0), (0.0, 10.0)] {
        for i in 0..20 {
            v.push(cx + (i % 5) as f64 * 0.01);
            v.push(cy + (i / 5) as f64 * 0.01);
        }
    }
    write_npy(path, "<f8", &[60, 2], &f64_bytes(&v));
}

fn seft(command: &str, input: &Path, extra: &[&str]) -> std::process::Output {
    common::output(
        common::seft()
            .arg(command)
            .arg("--input")
            .arg(input)
            .args(extra),
    )
}

fn json_of(out: &std::process::Output) -> serde_json::Value {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn select_covers_every_cluster_and_avoids_reuse() {
    let dir = tempfile::tempdir().unwrap();
    let x = dir.path().join("x.npy");
    three_groups(&x);
    for selector in ["kmeans", "kmeans+kde", "kde", "random"] {
        let rows = dir.path().join(format!("{selector}.jsonl"));
        let r = json_of(&seft(
            "select",
            &x,
            &[
                "--selector",
                selector,
                "--count",
                "3",
                "--iterations",
                "4",
                "--seed",
                "2",
                "--output",
                rows.to_str().unwrap(),
                "--json",
            ],
        ));
        assert_eq!(r["n"], 60);
        assert!(r["selection_seconds"].as_f64().unwrap() >= 0.0);
        let picks: Vec<(u64, u64)> = std::fs::read_to_string(&rows)
            .unwrap()
            .lines()
            .map(|l| {
                let v: serde_json::Value = serde_json::from_str(l).unwrap();
                (
                    v["iteration"].as_u64().unwrap(),
                    v["index"].as_u64().unwrap(),
                )
            })
            .collect();
        assert_eq!(picks.len(), 12, "{selector}");
        let mut indices: Vec<u64> = picks.iter().map(|p| p.1).collect();
        indices.sort();
        indices.dedup();
        assert_eq!(indices.len(), 12, "{selector}: a prompt was selected twice");
        if selector.starts_with("kmeans") {
            // One prompt from every group in every iteration.
            for t in 1..=4 {
                let mut groups: Vec<u64> = picks
                    .iter()
                    .filter(|p| p.0 == t)
                    .map(|p| p.1 / 20)
                    .collect();
                groups.sort();
                assert_eq!(groups, vec![0, 1, 2], "{selector}, iteration {t}");
            }
            assert_eq!(r["mean_coverage"], 1.0);
        }
    }
}

#[test]
fn select_embeds_text_input() {
    let dir = tempfile::tempdir().unwrap();
    let texts = dir.path().join("pool.txt");
    std::fs::write(
        &texts,
        "How do I bake sourdough bread?\nGive me a recipe for banana bread.\n\
         What is the derivative of x squared?\nSolve 3x + 5 = 11 for x.\n",
    )
    .unwrap();
    let rows = dir.path().join("picked.jsonl");
    let r = json_of(&seft(
        "select",
        &texts,
        &[
            "--model",
            common::minilm_folder().to_str().unwrap(),
            "--selector",
            "kmeans",
            "--count",
            "2",
            "--output",
            rows.to_str().unwrap(),
            "--json",
        ],
    ));
    assert_eq!((r["n"].as_u64(), r["d"].as_u64()), (Some(4), Some(384)));
    let picked: Vec<String> = std::fs::read_to_string(&rows)
        .unwrap()
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["text"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    // One baking prompt and one math prompt: the two topics are the two clusters.
    let baking = picked.iter().filter(|t| t.contains("bread")).count();
    assert_eq!((picked.len(), baking), (2, 1), "{picked:?}");
}

#[test]
fn select_bad_inputs_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let x = dir.path().join("x.npy");
    three_groups(&x);
    let texts = dir.path().join("pool.txt");
    std::fs::write(&texts, "one\ntwo\n").unwrap();
    let cases: [(&Path, &[&str], &str); 4] = [
        (&x, &["--count", "61"], "larger than the pool"),
        (&x, &["--count", "0"], "at least 1"),
        (
            &x,
            &["--count", "2", "--selector", "best"],
            "unknown selector",
        ),
        (
            &texts,
            &["--count", "1"],
            "pool.txt: text input needs --model",
        ),
    ];
    for (input, args, needle) in cases {
        let out = seft("select", input, args);
        assert!(!out.status.success(), "{needle}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(needle), "expected {needle:?} in {err}");
        assert!(!err.contains("panicked"), "{err}");
    }
}

#[test]
fn cluster_prints_seeding_time_and_cost() {
    let dir = tempfile::tempdir().unwrap();
    let x = dir.path().join("x.npy");
    three_groups(&x);
    for method in ["exact", "fast", "greedy"] {
        let out = cluster(
            &x,
            &["--k", "3", "--seed", "1", "--method", method, "--json"],
        );
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert!(r["seeding_seconds"].as_f64().unwrap() >= 0.0);
        let seeding = r["seeding_cost"].as_f64().unwrap();
        let after = r["cost"].as_f64().unwrap();
        assert!(after <= seeding + 1e-9, "{method}: Lloyd raised the cost");
        assert!(
            after < 1.0,
            "{method}: the three groups were not found (cost {after})"
        );
        let mut sizes: Vec<u64> = r["cluster_sizes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s.as_u64().unwrap())
            .collect();
        sizes.sort();
        assert_eq!(sizes, vec![20, 20, 20]);
    }
}

#[test]
fn bad_inputs_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let nan = dir.path().join("nan.npy");
    write_npy(&nan, "<f8", &[2, 2], &f64_bytes(&[0.0, 1.0, f64::NAN, 2.0]));
    let inf = dir.path().join("inf.npy");
    write_npy(
        &inf,
        "<f4",
        &[2, 1],
        &[0f32.to_le_bytes(), f32::INFINITY.to_le_bytes()].concat(),
    );
    let empty = dir.path().join("empty.npy");
    write_npy(&empty, "<f8", &[0, 3], &[]);
    let small = dir.path().join("small.npy");
    write_npy(&small, "<f8", &[2, 2], &f64_bytes(&[0.0, 1.0, 2.0, 3.0]));
    let ints = dir.path().join("ints.npy");
    write_npy(&ints, "<i8", &[1, 1], &1i64.to_le_bytes());
    let cases: [(&Path, &[&str], &str); 6] = [
        (&nan, &["--k", "1"], "nan.npy"),
        (&inf, &["--k", "1"], "inf.npy"),
        (&empty, &["--k", "1"], "empty.npy"),
        (&small, &["--k", "3"], "larger than the number of points"),
        (
            &small,
            &["--k", "1", "--method", "magic"],
            "unknown seeding method",
        ),
        (&ints, &["--k", "1"], "ints.npy"),
    ];
    for (input, args, needle) in cases {
        let out = cluster(input, args);
        assert!(!out.status.success(), "{needle}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(needle), "expected {needle:?} in {err}");
        assert!(!err.contains("panicked"), "{err}");
    }
}

/// Points at ±3e38: their squared distances overflow f32, so k-means refuses them with the
/// row and column instead of reporting a meaningless cost.
#[test]
fn kmeans_refuses_points_whose_distances_overflow() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("huge.npy");
    let values = [3e38f32, 0.0, -3e38, 0.0, 1.0, 1.0, 2.0, 2.0];
    seft::numeric::Matrix::new(vec![0.0; 8], 4, 2)
        .unwrap()
        .write_npy(&path)
        .unwrap();
    // Overwrite the data part of the file with the huge values (same header, f32 payload).
    let mut bytes = std::fs::read(&path).unwrap();
    let start = bytes.len() - 4 * values.len();
    for (i, v) in values.iter().enumerate() {
        bytes[start + 4 * i..start + 4 * i + 4].copy_from_slice(&v.to_le_bytes());
    }
    std::fs::write(&path, bytes).unwrap();
    let o = seft("cluster", &path, &["--k", "2"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "{err}");
    assert!(
        err.contains("row 0, column 0") && err.contains("overflow"),
        "{err}"
    );
}
