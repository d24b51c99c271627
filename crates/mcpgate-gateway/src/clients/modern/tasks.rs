//! `tasks/get`, `tasks/update`, `tasks/cancel` from modern clients (the Tasks extension).
//!
//! A modern backend that answers a call with `resultType: "task"` names the task with its own
//! id. The client is shown a gateway-minted id instead (128 random bits), mapped to the backend
//! and its id and bound to the caller's principal: `tasks/get`, `tasks/update` and
//! `tasks/cancel` are routed by that mapping, with `Mcp-Name` recomputed from the backend's id.
//! An id that is unknown, expired or another caller's gets the same "unknown task" error.

use std::sync::Arc;

use axum::http::StatusCode;
use axum::response::Response;
use mcpgate_protocol::envelope::json_string;
use mcpgate_protocol::{ErrorCode, RpcError};

use crate::calls::answer::error;
use crate::identity::Access;
use crate::request::ModernRequest;
use crate::state::Shared;

/// `tasks/get`, `tasks/update`, `tasks/cancel`: routed to the backend that created the task.
pub async fn handle(shared: &Arc<Shared>, access: Access, req: ModernRequest) -> Response {
    let params = req.params();
    let unknown = |id: &str| error(StatusCode::OK, Some(&req.id), &RpcError::new(ErrorCode::InvalidParams, format!("Unknown task: {id}")));
    let Some(id) = params.str("taskId").map(|t| t.into_owned()) else {
        return error(StatusCode::OK, Some(&req.id), &RpcError::new(ErrorCode::InvalidParams, "params.taskId must be a string"));
    };
    let principal = access.principal().unwrap_or_default();
    let Some((server, backend_task)) = crate::session::tasks::find(&shared.keys.load(), &id, &principal, crate::session::now_ms()) else { return unknown(&id) };
    let task = json_string(&backend_task);
    let params = String::from_utf8(params.rewrite(&[("taskId", Some(&task))])).unwrap_or_default();
    let Some(target) = crate::core::route::task(shared, &server, &req.method, params, &backend_task) else { return unknown(&id) };
    crate::calls::modern::task_call(shared, &access, &req, target, &id, &backend_task).await
}
