//! `seft cluster`: the contract (one JSON object with seeding_seconds and seeding_cost)
//! and clear errors on bad input.

use std::path::Path;
use std::process::Command;

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
    Command::new(env!("CARGO_BIN_EXE_seft"))
        .arg("cluster")
        .arg("--input")
        .arg(input)
        .args(extra)
        .output()
        .unwrap()
}

#[test]
fn cluster_prints_seeding_time_and_cost() {
    let dir = tempfile::tempdir().unwrap();
    let x = dir.path().join("x.npy");
    // Three tight groups in 2-D: any sensible seeding of k = 3 finds them.
    let mut v = Vec::new();
    for (cx, cy) in [(0.0, 0.0), (10.0, 0.0), (0.0, 10.0)] {
        for i in 0..20 {
            v.push(cx + (i % 5) as f64 * 0.01);
            v.push(cy + (i / 5) as f64 * 0.01);
        }
    }
    write_npy(&x, "<f8", &[60, 2], &f64_bytes(&v));
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
