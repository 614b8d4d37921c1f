use clap::Parser;

fn main() {
    restore_default_sigpipe();
    seft::memory::keep_freed_memory();
    let cli = seft::cli::Cli::parse();
    if let Err(err) = seft::cli::run(cli) {
        // One line: the chain of causes joined, so the file and the reason stay together.
        let msg = err
            .chain()
            .map(|e| e.to_string())
            .collect::<Vec<_>>()
            .join(": ");
        eprintln!("error: {msg}");
        std::process::exit(1);
    }
}

/// Rust ignores SIGPIPE, so `seft … | head` would panic on its next `println!`; a command-line
/// tool should end quietly when its reader goes away, as with the default signal action.
fn restore_default_sigpipe() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: setting a signal's disposition to its default before any thread starts.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}
