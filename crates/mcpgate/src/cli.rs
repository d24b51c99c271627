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

/// Logs on stderr, filtered by `RUST_LOG` (default `info`); with a tracer, the request
/// path's spans (target `mcpgate::otel`) also go to the trace exporter, and JSON log lines
/// carry `trace_id` and `span_id`.
pub fn init_logging(format: LogFormat, tracer: Option<opentelemetry_sdk::trace::SdkTracer>) {
    use tracing_subscriber::prelude::*;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let otel = tracer.map(|t| {
        let only_ours = tracing_subscriber::filter::Targets::new().with_target(mcpgate_gateway::observe::trace::TARGET, tracing::Level::TRACE);
        tracing_opentelemetry::layer().with_tracer(t).with_filter(only_ours)
    });
    let fmt = tracing_subscriber::fmt::layer().with_writer(std::io::stderr).with_ansi(ansi);
    match format {
        LogFormat::Json => {
            let fmt = fmt.json().event_format(TraceIds(tracing_subscriber::fmt::format().json()));
            tracing_subscriber::registry().with(otel).with(fmt.with_filter(filter)).init()
        }
        LogFormat::Text => tracing_subscriber::registry().with(otel).with(fmt.with_filter(filter)).init(),
    }
}

/// A JSON event format that puts the current `trace_id` and `span_id` first.
struct TraceIds<F>(F);

impl<S, N, F> tracing_subscriber::fmt::FormatEvent<S, N> for TraceIds<F>
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
    N: for<'a> tracing_subscriber::fmt::FormatFields<'a> + 'static,
    F: tracing_subscriber::fmt::FormatEvent<S, N>,
{
    fn format_event(
        &self,
        ctx: &tracing_subscriber::fmt::FmtContext<'_, S, N>,
        mut writer: tracing_subscriber::fmt::format::Writer<'_>,
        event: &tracing::Event<'_>,
    ) -> std::fmt::Result {
        let Some((trace_id, span_id)) = mcpgate_gateway::observe::trace::current_ids() else { return self.0.format_event(ctx, writer, event) };
        let mut line = String::new();
        self.0.format_event(ctx, tracing_subscriber::fmt::format::Writer::new(&mut line), event)?;
        match line.strip_prefix('{') {
            Some(rest) => write!(writer, "{{\"trace_id\":\"{trace_id}\",\"span_id\":\"{span_id}\",{rest}"),
            None => writer.write_str(&line),
        }
    }
}
