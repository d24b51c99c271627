//! The Tasks extension (`io.modelcontextprotocol/tasks`) across the gateway.
//!
//! A modern backend that answers a call with `resultType: "task"` names the task with its own
//! id. The client is shown a gateway-minted id instead (128 random bits), mapped to the backend
//! and its id and bound to the caller's principal: `tasks/get`, `tasks/update` and
//! `tasks/cancel` are routed by that mapping, with `Mcp-Name` recomputed from the backend's id.
//! An id that is unknown, expired or another caller's gets the same "unknown task" error.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use axum::response::Response;
use mcpgate_protocol::envelope::{Envelope, Needle, json_string, raw_str};
use mcpgate_protocol::names::ServerName;
use mcpgate_protocol::{ErrorCode, RpcError};

use super::{ModernRequest, error};
use crate::forward::{ResultRewrite, Target};
use crate::identity::Access;
use crate::state::Shared;

pub const EXTENSION: &str = "io.modelcontextprotocol/tasks";
/// How long a mapping is kept when the backend gives no `ttlMs` for its task.
const DEFAULT_TTL: Duration = Duration::from_secs(3600);
const MAX_TTL: Duration = Duration::from_secs(7 * 24 * 3600);

struct Route {
    server: ServerName,
    backend_task: String,
    principal: String,
    expires: Instant,
}

#[derive(Default)]
pub struct Tasks {
    routes: Mutex<HashMap<String, Route>>,
}

impl Tasks {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Route>> {
        self.routes.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records a backend's new task and returns the id the client sees.
    fn mint(&self, server: &ServerName, backend_task: &str, principal: &str, ttl_ms: Option<u64>) -> String {
        let bytes: [u8; 16] = rand::random();
        let id: String = std::iter::once("mcpgate-task-".to_owned()).chain(bytes.iter().map(|b| format!("{b:02x}"))).collect();
        let ttl = ttl_ms.map_or(DEFAULT_TTL, Duration::from_millis).min(MAX_TTL);
        let now = Instant::now();
        let mut routes = self.lock();
        routes.retain(|_, r| r.expires > now);
        routes.insert(id.clone(), Route { server: server.clone(), backend_task: backend_task.to_owned(), principal: principal.to_owned(), expires: now + ttl });
        id
    }

    fn find(&self, id: &str, principal: &str) -> Option<(ServerName, String)> {
        let routes = self.lock();
        let r = routes.get(id).filter(|r| r.principal == principal && r.expires > Instant::now())?;
        Some((r.server.clone(), r.backend_task.clone()))
    }

    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A backend result as the client sees it: a `task` result's id is swapped for a minted one.
/// Anything else is returned unchanged.
pub fn expose_created(shared: &Shared, server: &ServerName, principal: &str, response: Vec<u8>) -> Vec<u8> {
    static TASK: Needle = Needle::new(br#""task""#);
    if !TASK.may_be_in(&response) {
        return response;
    }
    let Ok(env) = Envelope::parse(&response) else { return response };
    let Some(result) = env.get("result").and_then(|r| Envelope::parse_raw(r).ok()) else { return response };
    if result.str("resultType").as_deref() != Some("task") {
        return response;
    }
    let Some(backend_task) = result.get("taskId").and_then(raw_str) else { return response };
    let ttl = result.get("ttlMs").and_then(|t| t.get().parse::<u64>().ok());
    let id = shared.tasks.mint(server, &backend_task, principal, ttl);
    let result = String::from_utf8(result.rewrite(&[("taskId", Some(&json_string(&id)))])).unwrap_or_default();
    env.rewrite(&[("result", Some(&result))])
}

/// `tasks/get`, `tasks/update`, `tasks/cancel`: routed to the backend that created the task.
pub async fn handle(shared: &Arc<Shared>, access: Access, req: ModernRequest) -> Response {
    let params = req.params();
    let unknown = |id: &str| error(StatusCode::OK, Some(&req.id), &RpcError::new(ErrorCode::InvalidParams, format!("Unknown task: {id}")));
    let Some(id) = params.str("taskId").map(|t| t.into_owned()) else {
        return error(StatusCode::OK, Some(&req.id), &RpcError::new(ErrorCode::InvalidParams, "params.taskId must be a string"));
    };
    let principal = access.principal().unwrap_or_default();
    let Some((server, backend_task)) = shared.tasks.find(&id, &principal) else { return unknown(&id) };
    let Some(backend) = shared.backend(&server) else { return unknown(&id) };
    let task = json_string(&backend_task);
    let target = Target {
        backend,
        method: req.method.clone(),
        tool: None,
        params: String::from_utf8(params.rewrite(&[("taskId", Some(&task))])).unwrap_or_default(),
        rewrite: ResultRewrite::None,
        name: Some(backend_task.clone()),
        param_headers: Vec::new(),
    };
    super::call::task_call(shared, &access, &req, target, &id, &backend_task).await
}

/// Client capabilities without the Tasks extension.
pub fn without_tasks_extension(capabilities: &str) -> String {
    let Ok(caps) = Envelope::parse(capabilities.as_bytes()) else { return capabilities.to_owned() };
    let Some(ext) = caps.get("extensions").and_then(|e| Envelope::parse_raw(e).ok()) else { return capabilities.to_owned() };
    if !ext.has(EXTENSION) {
        return capabilities.to_owned();
    }
    let ext = String::from_utf8(ext.rewrite(&[(EXTENSION, None)])).unwrap_or_default();
    String::from_utf8(caps.rewrite(&[("extensions", Some(&ext))])).unwrap_or_default()
}

/// The response to a task request with the backend's task id replaced by the client's (in
/// the result, and in an error's text: the backend's id is never shown).
pub fn expose_task_id(response: Vec<u8>, backend_task: &str, client_task: &str) -> Vec<u8> {
    let Ok(env) = Envelope::parse(&response) else { return response };
    if let Some(err) = env.get("error") {
        let quoted = json_string(backend_task);
        let inner = &quoted[1..quoted.len() - 1];
        if inner.is_empty() || !err.get().contains(inner) {
            return response;
        }
        let client = json_string(client_task);
        let err = err.get().replace(inner, &client[1..client.len() - 1]);
        return env.rewrite(&[("error", Some(&err))]);
    }
    let Some(result) = env.get("result").and_then(|r| Envelope::parse_raw(r).ok()) else { return response };
    if result.get("taskId").and_then(raw_str).as_deref() != Some(backend_task) {
        return response;
    }
    let result = String::from_utf8(result.rewrite(&[("taskId", Some(&json_string(client_task)))])).unwrap_or_default();
    env.rewrite(&[("result", Some(&result))])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minted_ids_are_bound_to_their_caller_and_expire() {
        let t = Tasks::default();
        let s = ServerName::parse("jobs").expect("name");
        let id = t.mint(&s, "backend-1", "alice", None);
        assert!(id.starts_with("mcpgate-task-") && id.len() == "mcpgate-task-".len() + 32);
        assert_eq!(t.find(&id, "alice"), Some((s.clone(), "backend-1".to_owned())));
        assert_eq!(t.find(&id, "bob"), None);
        assert_eq!(t.find("backend-1", "alice"), None);
        let short = t.mint(&s, "backend-2", "alice", Some(0));
        std::thread::sleep(Duration::from_millis(2));
        assert_eq!(t.find(&short, "alice"), None);
    }

    #[test]
    fn only_the_task_id_of_a_task_result_is_replaced() {
        let r = br#"{"jsonrpc":"2.0","id":1,"result":{"resultType":"task","taskId":"b-1","status":"working"}}"#.to_vec();
        let out = expose_task_id(r, "b-1", "mcpgate-task-x");
        assert_eq!(out, br#"{"jsonrpc":"2.0","id":1,"result":{"resultType":"task","taskId":"mcpgate-task-x","status":"working"}}"#.to_vec());
        let other = br#"{"jsonrpc":"2.0","id":1,"result":{"taskId":"zzz"}}"#.to_vec();
        assert_eq!(expose_task_id(other.clone(), "b-1", "x"), other);
        let lost = br#"{"jsonrpc":"2.0","id":1,"error":{"code":-32602,"message":"Unknown task: b-1"}}"#.to_vec();
        assert_eq!(
            expose_task_id(lost, "b-1", "mcpgate-task-x"),
            br#"{"jsonrpc":"2.0","id":1,"error":{"code":-32602,"message":"Unknown task: mcpgate-task-x"}}"#.to_vec()
        );
    }

    #[test]
    fn sessions_never_declare_the_tasks_extension_to_backends() {
        assert_eq!(
            without_tasks_extension(r#"{"sampling":{},"extensions":{"io.modelcontextprotocol/tasks":{},"x/y":{}}}"#),
            r#"{"sampling":{},"extensions":{"x/y":{}}}"#
        );
        assert_eq!(without_tasks_extension(r#"{"sampling":{}}"#), r#"{"sampling":{}}"#);
    }
}
