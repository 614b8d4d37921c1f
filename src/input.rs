//! Reading users' files within stated limits.
//!
//! A file's own length fields, a gzip stream or a device such as `/dev/zero` can ask for any
//! amount of memory; every whole-file read of user input goes through here so that its size is
//! known to be under a limit before it is held, and the error names the file, the limit and the
//! setting that raises it.

use std::io::Read;
use std::path::Path;

use crate::error::{Result, SeftError};

pub const MIB: u64 = 1 << 20;

/// The most a small metadata file (config.json, tokenizer files, TOML configs, judge prompts,
/// leaderboards) may hold. The largest real ones are tokenizer.json files of a few tens of MiB.
pub const METADATA_LIMIT: u64 = 256 * MIB;

/// A size limit and the setting a user changes to raise it (shown in the error).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limit {
    pub bytes: u64,
    pub setting: &'static str,
}

impl Limit {
    /// The limit for small metadata files, which no setting raises.
    pub const METADATA: Limit = Limit {
        bytes: METADATA_LIMIT,
        setting: "",
    };

    /// Half of this machine's memory (or 16 GiB where the platform does not say), for large
    /// arrays read whole, whose size only the file itself bounds.
    pub fn half_memory() -> Limit {
        Limit {
            bytes: physical_memory().map_or(16 << 30, |m| m / 2),
            setting: "",
        }
    }

    fn refuse(&self, path: &Path, what: &str) -> SeftError {
        let hint = if self.setting.is_empty() {
            String::new()
        } else {
            format!("; raise {} to read it", self.setting)
        };
        SeftError::file(
            path,
            format!(
                "{what} is larger than the {} MiB limit{hint}",
                self.bytes.div_ceil(MIB)
            ),
        )
    }
}

/// Installed memory in bytes, where the platform says.
pub fn physical_memory() -> Option<u64> {
    #[cfg(unix)]
    {
        // SAFETY: sysconf only reads system constants.
        let (pages, page) = unsafe {
            (
                libc::sysconf(libc::_SC_PHYS_PAGES),
                libc::sysconf(libc::_SC_PAGESIZE),
            )
        };
        if pages > 0 && page > 0 {
            return Some((pages as u64).saturating_mul(page as u64));
        }
    }
    None
}

/// Reads at most `limit.bytes` from `reader` into memory; one byte more is an error.
fn read_capped(
    reader: impl Read,
    limit: &Limit,
    size_hint: u64,
    path: &Path,
    what: &str,
) -> Result<Vec<u8>> {
    let mut out = Vec::with_capacity(size_hint.min(limit.bytes) as usize);
    reader
        .take(limit.bytes.saturating_add(1))
        .read_to_end(&mut out)
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::InvalidData | std::io::ErrorKind::InvalidInput => {
                SeftError::file(path, format!("invalid {what}: {e}"))
            }
            _ => SeftError::io(path, e),
        })?;
    if out.len() as u64 > limit.bytes {
        return Err(limit.refuse(path, what));
    }
    Ok(out)
}

/// The bytes of `path`, refused when there are more than `limit.bytes` (checked from the
/// file's length first, and while reading for files without one such as `/dev/zero`).
pub fn read_bytes(path: &Path, limit: &Limit) -> Result<Vec<u8>> {
    let file = std::fs::File::open(path).map_err(|e| SeftError::io(path, e))?;
    let len = file.metadata().map(|m| m.len()).unwrap_or(0);
    if len > limit.bytes {
        return Err(limit.refuse(path, "the file"));
    }
    read_capped(file, limit, len, path, "the file")
}

/// The text of `path`: gunzipped when it ends in `.gz` (with the limit on the inflated size),
/// UTF-8 checked, and without a leading byte-order mark (Windows tools write one; Python reads
/// such files with `utf-8-sig`).
pub fn read_text(path: &Path, limit: &Limit) -> Result<String> {
    let bytes = if path.extension().is_some_and(|e| e == "gz") {
        let file = std::fs::File::open(path).map_err(|e| SeftError::io(path, e))?;
        let reader = flate2::read::MultiGzDecoder::new(std::io::BufReader::new(file));
        read_capped(reader, limit, 0, path, "the decompressed data")?
    } else {
        read_bytes(path, limit)?
    };
    let text =
        String::from_utf8(bytes).map_err(|e| SeftError::file(path, format!("not UTF-8: {e}")))?;
    Ok(match text.strip_prefix('\u{feff}') {
        Some(rest) => rest.to_string(),
        None => text,
    })
}

/// A small metadata file's text (see [`METADATA_LIMIT`]).
pub fn read_metadata(path: &Path) -> Result<String> {
    read_text(path, &Limit::METADATA)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    const SMALL: Limit = Limit {
        bytes: 1000,
        setting: "data.max_file_mib",
    };

    #[test]
    fn a_stream_without_end_is_cut_at_the_limit() {
        let err = read_bytes(Path::new("/dev/zero"), &SMALL)
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with(
                "/dev/zero: the file is larger than the 1 MiB limit; raise data.max_file_mib"
            ),
            "{err}"
        );
    }

    #[test]
    fn a_gzip_bomb_is_refused_after_the_limit_not_inflated_whole() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bomb.jsonl.gz");
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        gz.write_all(&vec![b' '; 10 << 20]).unwrap();
        let compressed = gz.finish().unwrap();
        assert!(compressed.len() < 100_000);
        std::fs::write(&path, compressed).unwrap();
        let err = read_text(&path, &SMALL).unwrap_err().to_string();
        assert!(
            err.contains("bomb.jsonl.gz: the decompressed data is larger"),
            "{err}"
        );
        // Under the limit it reads, BOM removed.
        let ok = dir.path().join("ok.txt.gz");
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all("\u{feff}{\"a\": 1}\n".as_bytes()).unwrap();
        std::fs::write(&ok, gz.finish().unwrap()).unwrap();
        assert_eq!(read_text(&ok, &SMALL).unwrap(), "{\"a\": 1}\n");
    }

    #[test]
    fn corrupt_gzip_names_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bad.jsonl.gz");
        std::fs::write(&path, b"\x1f\x8b\x08\x00garbage").unwrap();
        let err = read_text(&path, &SMALL).unwrap_err().to_string();
        assert!(err.contains("bad.jsonl.gz"), "{err}");
    }
}
