//! Forwarding one client request to the backend that owns it, and translating everything the
//! backend sends back: ids restored, server-initiated requests re-numbered for the client,
//! resource URIs re-namespaced. Bounded by the backend's call timeout; never hangs.

use std::sync::Arc;

use bytes::Bytes;
use futures::StreamExt;
use mcpgate_protocol::envelope::{Envelope, Kind, json_string};
use mcpgate_protocol::errors::notification;
use mcpgate_upstream::{Connection, Exchange, Inbound, UpstreamError};
use tokio::time::{Instant, timeout_at};

use mcpgate_credentials::Resolved;

use super::{rewrite_contents, unavailable};
use crate::backend::Backend;
use crate::core::{ResultRewrite, Target, credential};
use crate::identity::Access;
use crate::reply::Reply;
use crate::session::ClientSession;
use crate::state::Shared;

pub async fn forward(shared: &Arc<Shared>, session: &Arc<ClientSession>, access: &Access, target: Target, client_id: String) -> Reply {
    let server = target.backend.name.clone();
    let deadline = Instant::now() + target.backend.timeouts.call;
    let credential = match timeout_at(deadline, credential(shared, access, &target.backend, target.tool.as_deref())).await {
        Ok(Ok(c)) => c,
        Ok(Err(e)) => return Reply::Json(e.response(Some(&client_id))),
        Err(_) => return Reply::Json(unavailable(&target.backend, &UpstreamError::Timeout).response(Some(&client_id))),
    };
    let (conn, mut exchange) = match timeout_at(deadline, open(shared, session, &target, credential.as_ref())).await {
        Ok(Ok(pair)) => pair,
        Ok(Err(e)) => return Reply::Json(unavailable(&target.backend, &e).response(Some(&client_id))),
        Err(_) => return Reply::Json(unavailable(&target.backend, &UpstreamError::Timeout).response(Some(&client_id))),
    };
    session.start_call(&client_id, &server, exchange.backend_id());
    let ctx = Arc::new(Ctx { session: session.clone(), backend: target.backend.clone(), client_id, rewrite: target.rewrite, conn });
    let first = next(&ctx, &mut exchange, deadline).await;
    if first.is_final {
        return Reply::Json(first.bytes.to_vec());
    }
    // Something came before the response: answer as a stream and keep relaying.
    let stream = futures::stream::unfold((Some(first), exchange, ctx, deadline), |(pending, mut ex, ctx, deadline)| async move {
        let item = match pending {
            Some(item) => item,
            None => next(&ctx, &mut ex, deadline).await,
        };
        if item.bytes.is_empty() {
            return None;
        }
        let out = item.bytes.clone();
        let follow = item.is_final.then(|| Out { bytes: Bytes::new(), is_final: true });
        Some((out, (follow, ex, ctx, deadline)))
    });
    Reply::Stream(stream.boxed())
}

struct Ctx {
    session: Arc<ClientSession>,
    backend: Arc<Backend>,
    client_id: String,
    rewrite: ResultRewrite,
    conn: Arc<Connection>,
}

/// The call stays cancellable until its context is gone (response sent or client gone).
impl Drop for Ctx {
    fn drop(&mut self) {
        self.session.end_call(&self.client_id);
    }
}

struct Out {
    bytes: Bytes,
    is_final: bool,
}

/// Gets the client's backend session and sends the request; a lost backend session is
/// re-initialised once, transparently.
pub(crate) async fn open(
    shared: &Arc<Shared>,
    session: &ClientSession,
    target: &Target,
    credential: Option<&Resolved>,
) -> Result<(Arc<Connection>, Exchange), UpstreamError> {
    let mut retried = false;
    loop {
        let conn = session.backend(&target.backend, &shared.http, credential).await?;
        match conn.request(&target.method, Some(&target.params)).await {
            Ok(ex) => return Ok((conn, ex)),
            Err(UpstreamError::SessionExpired | UpstreamError::Closed) if !retried => {
                tracing::info!(server = %target.backend.name, "backend session lost; re-initialising");
                session.forget_backend(&target.backend.name, &conn);
                retried = true;
            }
            Err(e) => return Err(e),
        }
    }
}

/// The next message for the client, already translated; errors become the final response.
async fn next(ctx: &Ctx, ex: &mut Exchange, deadline: Instant) -> Out {
    let item = match timeout_at(deadline, ex.next()).await {
        Ok(Ok(Some(m))) => m,
        Ok(Ok(None)) => return final_error(ctx, &UpstreamError::Closed),
        Ok(Err(e)) => {
            if matches!(e, UpstreamError::Closed | UpstreamError::Connect(_) | UpstreamError::SessionExpired) {
                ctx.session.forget_backend(&ctx.backend.name, &ctx.conn);
            }
            return final_error(ctx, &e);
        }
        Err(_) => {
            cancel_upstream(ctx, ex.backend_id(), "gateway timeout");
            return final_error(ctx, &UpstreamError::Timeout);
        }
    };
    match translate(ctx, &item) {
        Some(bytes) => Out { bytes, is_final: item.is_final },
        None if item.is_final => final_error(ctx, &UpstreamError::Protocol("unreadable response".into())),
        // Not something to show the client; wait for the next message.
        None => Box::pin(next(ctx, ex, deadline)).await,
    }
}

fn final_error(ctx: &Ctx, e: &UpstreamError) -> Out {
    Out { bytes: Bytes::from(unavailable(&ctx.backend, e).response(Some(&ctx.client_id))), is_final: true }
}

fn cancel_upstream(ctx: &Ctx, backend_id: u64, reason: &str) {
    let msg = notification("notifications/cancelled", Some(&format!(r#"{{"requestId":{backend_id},"reason":{}}}"#, json_string(reason))));
    let conn = ctx.conn.clone();
    tokio::spawn(async move {
        let _ = conn.notify(msg).await;
    });
}

fn translate(ctx: &Ctx, item: &Inbound) -> Option<Bytes> {
    let env = Envelope::parse(&item.bytes).ok()?;
    match env.kind()? {
        Kind::Response if item.is_final => {
            let result = match (ctx.rewrite, env.get("result")) {
                (ResultRewrite::ResourceContents, Some(r)) => Some(rewrite_contents(&ctx.backend.name, &ctx.backend.prefix, r)?),
                _ => None,
            };
            let mut replace = vec![("id", Some(ctx.client_id.as_str()))];
            if let Some(r) = &result {
                replace.push(("result", Some(r.as_str())));
            }
            Some(Bytes::from(env.rewrite(&replace)))
        }
        Kind::Response => None,
        Kind::Request if ctx.session.refuse_unsupported(&ctx.conn, &env) => None,
        Kind::Request => {
            let id = ctx.session.register_server_request(&ctx.backend.name, env.id()?.get());
            Some(Bytes::from(env.rewrite(&[("id", Some(&id))])))
        }
        Kind::Notification if mcpgate_protocol::errors::is_list_changed(&env) => {
            ctx.backend.request_relist();
            None
        }
        Kind::Notification => Some(item.bytes.clone()),
    }
}
