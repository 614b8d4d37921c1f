//! Output folders never cost a user's files: `seft export`, `seft sft` and `seft run` refuse a
//! folder that holds files seft did not write, leave every such file byte-identical and leave
//! nothing of their own behind; folders seft made are replaced or resumed as before.

mod common;

use std::path::Path;

/// A folder of someone's files: (name, contents).
fn users_folder(dir: &Path) -> Vec<(String, Vec<u8>)> {
    std::fs::create_dir_all(dir.join("src")).unwrap();
    let files = vec![
        ("notes.txt".to_string(), b"my notes\n".to_vec()),
        ("config.toml".to_string(), b"[mine]\nkey = 1\n".to_vec()),
        ("src/main.rs".to_string(), b"fn main() {}\n".to_vec()),
    ];
    for (name, bytes) in &files {
        std::fs::write(dir.join(name), bytes).unwrap();
    }
    files
}

/// Asserts that `dir` holds exactly `files`, byte for byte, and nothing else.
fn unchanged(dir: &Path, files: &[(String, Vec<u8>)]) {
    for (name, bytes) in files {
        assert_eq!(&std::fs::read(dir.join(name)).unwrap(), bytes, "{name}");
    }
    let mut entries: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    entries.sort();
    assert_eq!(entries, ["config.toml", "notes.txt", "src"]);
}

fn hidden_leftovers(parent: &Path) -> Vec<String> {
    std::fs::read_dir(parent)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with('.'))
        .collect()
}

#[test]
fn export_into_a_users_folder_is_refused_and_leaves_it_untouched() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("project");
    let files = users_folder(&out);
    let model = common::fixture("tiny_archs/llama");
    let o = common::output(
        common::seft()
            .args(["export", "--model"])
            .arg(&model)
            .arg("--out")
            .arg(&out),
    );
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "{err}");
    assert!(
        err.contains("project") && err.contains("did not write"),
        "{err}"
    );
    unchanged(&out, &files);
    assert!(hidden_leftovers(tmp.path()).is_empty());
}

#[test]
fn export_into_the_working_directory_is_refused_without_writing_anything() {
    let tmp = tempfile::tempdir().unwrap();
    let files = users_folder(tmp.path());
    let model = common::fixture("tiny_archs/llama");
    let o = common::output(
        common::seft()
            .current_dir(tmp.path())
            .args(["export", "--out", ".", "--model"])
            .arg(&model),
    );
    assert!(!o.status.success());
    unchanged(tmp.path(), &files);
}

#[test]
fn export_replaces_a_folder_seft_wrote() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("exported");
    let model = common::fixture("tiny_archs/llama");
    for _ in 0..2 {
        common::success(
            common::seft()
                .args(["export", "--model"])
                .arg(&model)
                .arg("--out")
                .arg(&out),
        );
    }
    assert!(out.join("model.safetensors").exists());
    assert!(hidden_leftovers(tmp.path()).is_empty());
}

#[test]
fn sft_into_a_users_folder_is_refused_and_leaves_it_untouched() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("project");
    let files = users_folder(&out);
    let config = common::tiny_sft_config(tmp.path(), &format!("[output]\ndir = {out:?}\n"));
    let o = common::output(common::seft().args(["sft", "--config"]).arg(&config));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "{err}");
    assert!(
        err.contains("output.dir") && err.contains("did not write"),
        "{err}"
    );
    unchanged(&out, &files);
}

#[test]
fn run_into_a_users_folder_is_refused_and_leaves_it_untouched() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("project");
    let files = users_folder(&out);
    std::fs::remove_file(out.join("config.toml")).unwrap();
    let files: Vec<_> = files
        .into_iter()
        .filter(|(n, _)| n != "config.toml")
        .collect();
    let config = concat!(env!("CARGO_MANIFEST_DIR"), "/configs/quickstart.toml");
    let o = common::output(common::seft().args(["run", config, "--out"]).arg(&out));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "{err}");
    assert!(
        err.contains("--out") && err.contains("did not write"),
        "{err}"
    );
    for (name, bytes) in &files {
        assert_eq!(&std::fs::read(out.join(name)).unwrap(), bytes, "{name}");
    }
    assert!(!out.join("config.toml").exists() && !out.join("data").exists());
}

/// `output.dir = "/"` is refused before anything is written. Checked on the claim every
/// writer makes first (`seft sft`, `seft run`, `seft export`) rather than through `seft sft`:
/// were the check ever lost, the command would fill the machine's root folder (seft before the
/// check wrote config.toml, model/, checkpoints/ and its metrics there).
#[test]
fn the_root_folder_is_never_claimed() {
    let err = seft::ownership::claim_dir(Path::new("/"), "output.dir")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("output.dir") && err.contains("did not write"),
        "{err}"
    );
    assert!(!Path::new("/.seft-made").exists());
}

/// A write that fails part-way (the file-size limit stands in for a full disk: tests run as
/// root, which writes into read-only folders) leaves neither the folder nor a hidden partial.
#[test]
fn an_export_whose_writes_fail_leaves_nothing_behind() {
    use std::os::unix::process::CommandExt;
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("exported");
    let mut cmd = common::seft();
    cmd.args(["export", "--model"])
        .arg(common::fixture("tiny_archs/llama"))
        .arg("--out")
        .arg(&out);
    // SAFETY: only async-signal-safe libc calls between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            let limit = libc::rlimit {
                rlim_cur: 4096,
                rlim_max: 4096,
            };
            libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
            if libc::setrlimit(libc::RLIMIT_FSIZE, &limit) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let o = common::output(&mut cmd);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        err.contains("exported") || err.contains("File too large"),
        "{err}"
    );
    assert!(!out.exists(), "{err}");
    assert_eq!(hidden_leftovers(tmp.path()), Vec::<String>::new());
}
