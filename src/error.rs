//! The one error type of seft's library: every failure on user input names the file (and the
//! key, tensor or line inside it) and the cause, on one line, so the CLI can print it and exit
//! non-zero instead of panicking.

use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum SeftError {
    /// Something is wrong with a file's contents.
    #[error("{}: {}", path.display(), shortened(msg))]
    File { path: PathBuf, msg: String },
    /// A file could not be opened, read or written.
    #[error("{}: {cause}", path.display())]
    Io {
        path: PathBuf,
        cause: std::io::Error,
    },
    /// Invalid arguments or configuration that is not tied to a file.
    #[error("{}", shortened(.0))]
    Invalid(String),
}

impl SeftError {
    pub fn file(path: &Path, msg: impl Into<String>) -> Self {
        SeftError::File {
            path: path.to_path_buf(),
            msg: msg.into(),
        }
    }

    pub fn io(path: &Path, cause: std::io::Error) -> Self {
        SeftError::Io {
            path: path.to_path_buf(),
            cause,
        }
    }
}

pub type Result<T, E = SeftError> = std::result::Result<T, E>;

/// The longest message shown, in characters.
const MAX_MESSAGE_CHARS: usize = 1000;

/// `msg` cut to [`MAX_MESSAGE_CHARS`]: a message may quote a value from the file ("must be a
/// number, got ..."), and a hostile file's value can be megabytes long.
fn shortened(msg: &str) -> std::borrow::Cow<'_, str> {
    match msg.char_indices().nth(MAX_MESSAGE_CHARS) {
        Some((cut, _)) => format!("{}… ({} bytes in all)", &msg[..cut], msg.len()).into(),
        None => msg.into(),
    }
}

thread_local! {
    /// Set while [`catch_panic`] runs, so the panic hook stays quiet for panics it turns into
    /// errors.
    static CATCHING: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Runs `f`, turning a panic inside it into `Err(message)` without printing it. For calls into
/// libraries that panic on malformed input instead of returning an error (tokenizers unwraps
/// some deserialization errors), so that the user still gets one error line naming the file.
pub fn catch_panic<T>(f: impl FnOnce() -> T) -> std::result::Result<T, String> {
    static QUIET_HOOK: std::sync::Once = std::sync::Once::new();
    QUIET_HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !CATCHING.with(|c| c.get()) {
                previous(info);
            }
        }));
    });
    let was = CATCHING.with(|c| c.replace(true));
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
    CATCHING.with(|c| c.set(was));
    outcome.map_err(|panic| {
        panic
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_else(|| "a library panicked".into())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_quoting_huge_values_are_cut() {
        let huge = format!(
            "'rope_theta' must be a number, got \"{}\"",
            "x".repeat(1 << 20)
        );
        let shown = SeftError::file(Path::new("config.json"), huge).to_string();
        assert!(shown.starts_with("config.json: 'rope_theta' must be a number, got \"xxx"));
        assert!(
            shown.chars().count() < 1100 && shown.ends_with("bytes in all)"),
            "{shown}"
        );
        let short = SeftError::Invalid("fine".into()).to_string();
        assert_eq!(short, "fine");
    }
}
