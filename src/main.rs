//! The `shelfcast` binary: parse the command line, set up logging, run, map errors to exit codes.

mod cli;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    passive_openmp();
    let args = cli::Cli::parse();
    cli::init_tracing(args.verbose, args.quiet);
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    builder.enable_all();
    // Ballista's plan (de)serialisation, and its in-process scheduler and executor
    // (`engine = "ballista-standalone"`) on these workers, recurse deeper than tokio's default
    // 2 MiB stacks allow in a debug build.
    #[cfg(feature = "ballista")]
    builder.thread_stack_size(16 << 20);
    let runtime = match builder.build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(cli::run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", describe(&e));
            ExitCode::FAILURE
        }
    }
}

/// The error and its causes joined by ": ", leaving out a cause whose text the message before it
/// already holds (wrapped SQL errors repeat their inner message).
fn describe(e: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if out.contains(&text) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&text);
    }
    out
}

/// libtorch's OpenMP threads busy-wait by default and, competing with DataFusion's workers for
/// the cores, slow training down a hundredfold. The policy is read when libgomp loads, before
/// `main`, so when it is unset the process restarts itself once with `OMP_WAIT_POLICY=PASSIVE`.
fn passive_openmp() {
    #[cfg(unix)]
    if std::env::var_os("OMP_WAIT_POLICY").is_none() {
        use std::os::unix::process::CommandExt;
        if let Ok(exe) = std::env::current_exe() {
            // `exec` only returns on failure; then carry on with the default policy.
            let _ = std::process::Command::new(exe)
                .args(std::env::args_os().skip(1))
                .env("OMP_WAIT_POLICY", "PASSIVE")
                .exec();
        }
    }
}
