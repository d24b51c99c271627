//! `mcpgate pins list | diff | approve`: review and approve pinned definitions, on the pin
//! file itself (`--file`, or the file a config names with `--config`) or through a running
//! gateway's admin endpoint (`--admin URL`, token from `MCPGATE_ADMIN_TOKEN`).
//!
//! File changes take the pin file's lock and replace the file atomically, so concurrent
//! approvals (other CLI runs, the gateway) never lose one another's pins. Never prints the
//! admin token.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand};
use mcpgate_gateway::pins::diff::{FieldChange, diff, render};
use mcpgate_gateway::pins::{Change, PinKind, PinSet, Selection, file};
use serde_json::{Value, json};

#[derive(Args, Debug)]
pub struct PinsArgs {
    #[command(subcommand)]
    pub command: PinsCommand,
}

#[derive(Subcommand, Debug)]
pub enum PinsCommand {
    /// Every pinned and pending tool and prompt, with its state.
    List {
        #[command(flatten)]
        source: Source,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// What changed between the approved and the observed definition, field by field.
    Diff {
        server: String,
        name: String,
        /// NAME is a prompt (default: a tool).
        #[arg(long)]
        prompt: bool,
        #[command(flatten)]
        source: Source,
    },
    /// Approve observed definitions: one item, every item of a server, or all.
    Approve {
        /// SERVER NAME of one item.
        #[arg(num_args = 0..=2, value_names = ["SERVER", "NAME"])]
        item: Vec<String>,
        /// NAME is a prompt (default: a tool).
        #[arg(long)]
        prompt: bool,
        /// Approve only if the observed definition still has this hash (what you reviewed).
        #[arg(long)]
        hash: Option<String>,
        /// Every pending item of this server.
        #[arg(long, conflicts_with_all = ["item", "all", "hash"])]
        server: Option<String>,
        /// Every pending item of every server.
        #[arg(long, conflicts_with_all = ["item", "server", "hash"])]
        all: bool,
        #[command(flatten)]
        source: Source,
    },
}

/// Where the pins are: exactly one of these.
#[derive(Args, Debug)]
#[group(required = true, multiple = false)]
pub struct Source {
    /// The pin file.
    #[arg(long)]
    pub file: Option<PathBuf>,
    /// The gateway config whose `pins.file` to use.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// A running gateway's admin endpoint, e.g. http://127.0.0.1:9091 (bearer token from
    /// MCPGATE_ADMIN_TOKEN).
    #[arg(long)]
    pub admin: Option<String>,
}

enum Target {
    File(PathBuf),
    Admin { base: String, token: Option<String>, http: reqwest::Client },
}

impl Source {
    fn target(&self) -> Result<Target, String> {
        if let Some(f) = &self.file {
            return Ok(Target::File(f.clone()));
        }
        if let Some(c) = &self.config {
            let config = mcpgate_gateway::config::load_file(c).map_err(|e| e.to_string())?;
            let pins = config.pins.ok_or_else(|| format!("error: {}: pins: missing (fix: add pins: {{file: ...}} or pass --file)", c.display()))?;
            return Ok(Target::File(pins.file));
        }
        let base = self.admin.clone().unwrap_or_default().trim_end_matches('/').to_owned();
        let token = std::env::var("MCPGATE_ADMIN_TOKEN").ok().filter(|t| !t.is_empty());
        let http = reqwest::Client::builder().no_proxy().build().map_err(|e| e.to_string())?;
        Ok(Target::Admin { base, token, http })
    }
}

pub async fn run(args: PinsArgs) -> ExitCode {
    let result = match args.command {
        PinsCommand::List { source, json } => list(source, json).await,
        PinsCommand::Diff { server, name, prompt, source } => show_diff(source, server, name, kind(prompt)).await,
        PinsCommand::Approve { item, prompt, hash, server, all, source } => {
            let selection = match (item.as_slice(), server, all) {
                ([s, n], None, false) => Ok(Selection::One { server: s.clone(), kind: kind(prompt), name: n.clone() }),
                ([], Some(server), false) => Ok(Selection::Server { server }),
                ([], None, true) => Ok(Selection::All),
                _ => Err("error: approve SERVER NAME, --server SERVER or --all (fix: name what to approve)".to_owned()),
            };
            match selection {
                Ok(selection) => approve(source, selection, hash).await,
                Err(e) => Err(e),
            }
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
    }
}

fn kind(prompt: bool) -> PinKind {
    if prompt { PinKind::Prompt } else { PinKind::Tool }
}

fn read(path: &std::path::Path) -> Result<PinSet, String> {
    file::read(path).map_err(|e| format!("error: {e}"))
}

async fn admin_get(base: &str, token: &Option<String>, http: &reqwest::Client, path: &str) -> Result<Value, String> {
    let mut req = http.get(format!("{base}{path}"));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    answer(req.send().await).await
}

async fn answer(resp: Result<reqwest::Response, reqwest::Error>) -> Result<Value, String> {
    let resp = resp.map_err(|e| format!("error: cannot reach the admin endpoint: {e}"))?;
    let status = resp.status();
    let body: Value = resp.json().await.unwrap_or(Value::Null);
    if status.is_success() {
        return Ok(body);
    }
    let msg = body.get("error").and_then(Value::as_str).unwrap_or("no detail");
    let fix = if status == reqwest::StatusCode::UNAUTHORIZED { " (fix: set MCPGATE_ADMIN_TOKEN to the gateway's admin.token)" } else { "" };
    Err(format!("error: admin endpoint answered {status}: {msg}{fix}"))
}

async fn list(source: Source, as_json: bool) -> Result<(), String> {
    let listing = match source.target()? {
        Target::File(path) => file_listing(&read(&path)?),
        Target::Admin { base, token, http } => admin_get(&base, &token, &http, "/admin/pins").await?,
    };
    if as_json {
        out(&format!("{}\n", serde_json::to_string_pretty(&listing).unwrap_or_default()));
        return Ok(());
    }
    let items = listing.get("items").and_then(Value::as_array).cloned().unwrap_or_default();
    let mut text = format!("{:<20} {:<7} {:<32} {:<9} {:<12} {:<20} {:<20}\n", "SERVER", "KIND", "NAME", "STATE", "QUARANTINED", "APPROVED", "PENDING");
    for i in &items {
        let s = |k: &str| i.get(k).and_then(Value::as_str).unwrap_or("-").to_owned();
        let hash = |k: &str| i.get(k).and_then(|p| p.get("hash")).and_then(Value::as_str).map_or("-".to_owned(), short);
        let quarantined = match i.get("quarantined").and_then(Value::as_bool) {
            Some(true) => "yes",
            Some(false) => "no",
            None => "?",
        };
        text.push_str(&format!(
            "{:<20} {:<7} {:<32} {:<9} {:<12} {:<20} {:<20}\n",
            s("server"),
            s("kind"),
            s("name"),
            s("state"),
            quarantined,
            hash("approved"),
            hash("pending")
        ));
    }
    if items.is_empty() {
        text.push_str("(no pins)\n");
    }
    out(&text);
    Ok(())
}

/// Writes to stdout; a closed pipe (`| head`) ends the output quietly.
fn out(text: &str) {
    use std::io::Write;
    let _ = std::io::stdout().lock().write_all(text.as_bytes());
}

fn short(hash: &str) -> String {
    hash.get(..19).map_or_else(|| hash.to_owned(), |h| format!("{h}…"))
}

/// The same shape as the admin endpoint's answer, from the file alone (no quarantine
/// information: that needs the running gateway).
fn file_listing(set: &PinSet) -> Value {
    let items: Vec<Value> = set
        .items()
        .map(|(server, kind, name, e)| {
            let state = match (&e.approved, &e.pending) {
                (Some(_), None) => "approved",
                (Some(_), Some(_)) => "changed",
                (None, _) => "unpinned",
            };
            json!({"server": server, "kind": kind.as_str(), "name": name, "state": state, "quarantined": null,
                "approved": e.approved.as_ref().map(|p| json!({"hash": p.hash, "at": p.at, "by": p.by})),
                "pending": e.pending.as_ref().map(|p| json!({"hash": p.hash, "at": p.at}))})
        })
        .collect();
    json!({"items": items})
}

async fn show_diff(source: Source, server: String, name: String, kind: PinKind) -> Result<(), String> {
    let (approved, observed, changes): (Option<Value>, Option<Value>, Vec<FieldChange>) = match source.target()? {
        Target::File(path) => {
            let set = read(&path)?;
            let Some(e) = set.entry(&server, kind, &name) else {
                return Err(format!("error: no {} named {name} of server {server} in {}", kind.as_str(), path.display()));
            };
            let before = e.approved.as_ref().map_or(Value::Null, |p| p.definition.clone());
            let after = e.pending.as_ref().map_or_else(|| before.clone(), |p| p.definition.clone());
            let pin = |p: &mcpgate_gateway::pins::set::Pin| json!({"hash": p.hash, "at": p.at, "by": p.by});
            (e.approved.as_ref().map(pin), e.pending.as_ref().map(pin), diff(&before, &after))
        }
        Target::Admin { base, token, http } => {
            let path = format!("/admin/pins/diff?server={}&name={}&kind={}", enc(&server), enc(&name), kind.as_str());
            let v = admin_get(&base, &token, &http, &path).await?;
            let changes = serde_json::from_value(v.get("changes").cloned().unwrap_or_default()).unwrap_or_default();
            (v.get("approved").cloned().filter(|a| !a.is_null()), v.get("observed").cloned().filter(|o| !o.is_null()), changes)
        }
    };
    let hash = |v: &Option<Value>| v.as_ref().and_then(|p| p.get("hash")).and_then(Value::as_str).unwrap_or("-").to_owned();
    println!("{server} {} {name}", kind.as_str());
    println!("  approved: {}", hash(&approved));
    println!("  observed: {}", if observed.is_some() { hash(&observed) } else { "(same as approved)".to_owned() });
    match (&approved, &observed) {
        (None, _) => println!("never approved: the whole definition is new"),
        (Some(_), None) => println!("no change waiting for approval"),
        _ if changes.is_empty() => println!("no field differs"),
        _ => {}
    }
    print!("{}", render(&changes));
    Ok(())
}

fn enc(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

async fn approve(source: Source, selection: Selection, hash: Option<String>) -> Result<(), String> {
    let approved: Vec<Value> = match source.target()? {
        Target::File(path) => {
            let change = Change::Approve { selection, hash, by: "cli".into() };
            let now = mcpgate_gateway::pins::store::now();
            let (_, applied) = tokio::task::spawn_blocking(move || file::update(&path, &change, &now))
                .await
                .map_err(|e| format!("error: {e}"))?
                .map_err(|e| format!("error: {e}"))?;
            applied.approved.iter().map(|a| serde_json::to_value(a).unwrap_or_default()).collect()
        }
        Target::Admin { base, token, http } => {
            let body = match &selection {
                Selection::One { server, kind, name } => json!({"server": server, "kind": kind, "name": name, "hash": hash}),
                Selection::Server { server } => json!({"server": server}),
                Selection::All => json!({"all": true}),
            };
            let mut req = http.post(format!("{base}/admin/pins/approve")).json(&body);
            if let Some(t) = &token {
                req = req.bearer_auth(t);
            }
            let v = answer(req.send().await).await?;
            v.get("approved").and_then(Value::as_array).cloned().unwrap_or_default()
        }
    };
    for a in &approved {
        let s = |k: &str| a.get(k).and_then(Value::as_str).unwrap_or("?").to_owned();
        println!("approved {} {} {} {}", s("server"), s("kind"), s("name"), s("hash"));
    }
    if approved.is_empty() {
        println!("nothing was waiting for approval");
    }
    Ok(())
}
