//! Output folders: seft writes into a folder only when it is new, empty, or one seft made
//! itself (it holds the marker file [`MARKER`]), and replaces nothing else. A user's folder
//! named as an output by mistake is refused with one error line and left untouched.

use std::path::Path;

use crate::error::{Result, SeftError};

/// The file that marks a folder as written by seft.
pub const MARKER: &str = ".seft-made";

/// Whether `dir` holds seft's marker.
pub fn made_by_seft(dir: &Path) -> bool {
    dir.join(MARKER).is_file()
}

/// Whether `dir` is an existing directory with nothing in it.
fn is_empty_dir(dir: &Path) -> Result<bool> {
    let mut entries = std::fs::read_dir(dir).map_err(|e| SeftError::io(dir, e))?;
    Ok(entries.next().is_none())
}

/// Marks `dir` (which seft created or emptied) as seft's.
pub fn mark(dir: &Path) -> Result<()> {
    let path = dir.join(MARKER);
    std::fs::write(&path, "written by seft; seft may replace this folder\n")
        .map_err(|e| SeftError::io(&path, e))
}

/// Checks that seft may write into or replace `dir`: it is missing, empty, or seft's. The error
/// names `what` the folder is for (e.g. "output.dir", "--out").
pub fn check_replaceable(dir: &Path, what: &str) -> Result<()> {
    if !dir.exists() || made_by_seft(dir) {
        return Ok(());
    }
    if !dir.is_dir() {
        return Err(SeftError::file(
            dir,
            format!("{what} is a file, not a folder: choose a new folder"),
        ));
    }
    if is_empty_dir(dir)? {
        return Ok(());
    }
    Err(SeftError::file(
        dir,
        format!(
            "{what} holds files seft did not write, and seft never replaces or writes into such a folder: choose a new or empty folder"
        ),
    ))
}

/// Makes `dir` seft's output folder: creates it (or accepts it empty, or already seft's) and
/// marks it; refuses any other existing folder.
pub fn claim_dir(dir: &Path, what: &str) -> Result<()> {
    check_replaceable(dir, what)?;
    std::fs::create_dir_all(dir).map_err(|e| SeftError::io(dir, e))?;
    if !made_by_seft(dir) {
        mark(dir)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_empty_and_marked_folders_are_claimed_and_others_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let new = tmp.path().join("new");
        claim_dir(&new, "--out").unwrap();
        assert!(made_by_seft(&new));
        // Claimed again (a resumed run): still fine.
        claim_dir(&new, "--out").unwrap();
        let empty = tmp.path().join("empty");
        std::fs::create_dir(&empty).unwrap();
        claim_dir(&empty, "--out").unwrap();
        let theirs = tmp.path().join("theirs");
        std::fs::create_dir(&theirs).unwrap();
        std::fs::write(theirs.join("notes.txt"), "mine").unwrap();
        let err = claim_dir(&theirs, "--out").unwrap_err().to_string();
        assert!(
            err.contains("did not write") && err.contains("theirs"),
            "{err}"
        );
        assert!(!made_by_seft(&theirs));
        assert_eq!(
            std::fs::read_to_string(theirs.join("notes.txt")).unwrap(),
            "mine"
        );
        let file = tmp.path().join("file");
        std::fs::write(&file, "x").unwrap();
        assert!(claim_dir(&file, "--out").is_err());
    }
}
