//! Tasks created by modern backends, as clients see them: a `task` result's id swapped for a
//! gateway-minted one on the way out, a task request's result mapped back, and sessions never
//! declaring the Tasks extension to a backend (a session cannot poll tasks).

use mcpgate_protocol::envelope::{Envelope, Needle, json_string, raw_str};
use mcpgate_protocol::modern::TASKS_EXTENSION as EXTENSION;
use mcpgate_protocol::names::ServerName;

use crate::state::Shared;

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
    let id = crate::session::tasks::mint(&shared.keys.load(), server, &backend_task, principal, ttl, crate::session::now_ms());
    let result = String::from_utf8(result.rewrite(&[("taskId", Some(&json_string(&id)))])).unwrap_or_default();
    env.rewrite(&[("result", Some(&result))])
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
