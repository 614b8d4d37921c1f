use clap::Parser;

fn main() {
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
