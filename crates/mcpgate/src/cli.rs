//! Command-line arguments and logging set-up.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Parser, Debug)]
#[command(name = "mcpgate", version, about = "One MCP endpoint in front of many MCP servers")]
pub struct Cli {
    /// Log format on stderr.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text, env = "MCPGATE_LOG_FORMAT")]
    pub log_format: LogFormat,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Copy, Clone, Debug, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the gateway.
    Serve(ServeArgs),
    /// Validate a config file and print every problem.
    Check(CheckArgs),
    /// Run the gateway with built-in demo backends and show how to connect.
    Demo(DemoArgs),
    /// Review and approve pinned tool and prompt definitions (docs/governance.md).
    Pins(crate::pins::PinsArgs),
}

#[derive(Args, Debug)]
pub struct ServeArgs {
    /// YAML config file (reloaded on change and on SIGHUP).
    #[arg(long, short, conflicts_with = "server")]
    pub config: Option<PathBuf>,
    /// Address to listen on (overrides the config's `listen`).
    #[arg(long)]
    pub listen: Option<String>,
    /// A backend as NAME=URL (Streamable HTTP) or NAME=sse+URL (legacy HTTP+SSE); repeatable.
    #[arg(long, value_name = "NAME=URL")]
    pub server: Vec<String>,
}

#[derive(Args, Debug)]
pub struct CheckArgs {
    #[arg(long, short)]
    pub config: PathBuf,
}

#[derive(Args, Debug)]
pub struct DemoArgs {
    /// Address the demo gateway listens on.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub listen: String,
    /// Run the walkthrough, print it, and exit (0 when every step behaved as expected).
    #[arg(long)]
    pub once: bool,
    /// Use this Vault/OpenBao (KV v2 at `secret/`) instead of the embedded dev store; the
    /// demo writes its users' secrets there.
    #[arg(long, requires = "vault_token")]
    pub vault_addr: Option<String>,
    /// Token for `--vault-addr` (needs write access to `secret/`).
    #[arg(long, env = "VAULT_TOKEN", hide_env_values = true)]
    pub vault_token: Option<String>,
}

pub fn init_logging(cli: &Cli) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(ansi);
    match cli.log_format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
}
