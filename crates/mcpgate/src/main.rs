//! The `mcpgate` command: `serve`, `check`, `demo` and `pins`.

mod cli;
mod demo;
mod pins;
mod serve;

use std::process::ExitCode;

use clap::Parser;

/// mimalloc: every call allocates and frees a few dozen small blocks, often on another worker
/// thread than the one that allocated them; glibc's arenas spend far more per block on that
/// (docs/benchmarks.md, "Where the time goes"). Entered through its plain `malloc` for ordinary
/// alignments (`mcpgate-alloc`).
#[global_allocator]
static ALLOCATOR: mcpgate_alloc::Allocator = mcpgate_alloc::Allocator;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    // `serve` sets logging up once its config is read (it may add the trace exporter).
    if !matches!(cli.command, cli::Command::Serve(_)) {
        cli::init_logging(cli.log_format, None);
    }
    // One TLS crypto provider for the whole process, before any client or listener is built.
    mcpgate_tls::install_crypto_provider();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async move {
        match cli.command {
            cli::Command::Serve(args) => serve::serve(args, cli.log_format).await,
            cli::Command::Check(args) => serve::check(&args.config),
            cli::Command::Demo(args) => demo::run(args).await,
            cli::Command::Pins(args) => pins::run(args).await,
        }
    })
}
