//! Modern client, legacy backend.
//!
//! The call runs on a backend session the gateway keeps for the caller: one per (principal,
//! declared client capabilities), never shared across identities (see [`stateless_session`]).
//! When the backend sends `elicitation/create`, `sampling/createMessage` or `roots/list` during
//! the call, the call is parked: the client gets `resultType: "input_required"` with those
//! requests and a sealed `requestState` (see `state`). The client's retry, carrying
//! `inputResponses` and that state, answers the backend's pending requests and the same call
//! continues. A state is bound to the caller, the request and an expiry; the parked call is
//! taken out once, so a replay finds nothing and nothing runs twice.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::http::StatusCode;
use axum::response::Response;
use bytes::Bytes;
use mcpgate_protocol::envelope::{Envelope, Kind, json_string};
use mcpgate_protocol::errors::result_response;
use mcpgate_protocol::modern::may_require_input;
use mcpgate_protocol::versions::LATEST_LEGACY;
use mcpgate_protocol::{ErrorCode, ObjectWriter, RpcError};
use mcpgate_upstream::UpstreamError;
use tokio::sync::mpsc;
use tokio::time::{Instant, sleep, timeout_at};

use super::answer::{error, final_response, respond, respond_inline, send_final};
use super::legacy::BackendCall;
use super::unavailable;
use crate::catalog::ResultRewrite;
use crate::cluster::{BusMessage, ResumeRequest};
use crate::core::{Target, credential};
use crate::identity::Access;
use crate::request::ModernRequest;
use crate::session::seal::{Sealer, request_digest};
use crate::session::{ClientCaps, ClientSession, capability_of, refuse};
use crate::state::Shared;
use mcpgate_store::bus::To;

/// How long a parked call waits for the client's retry (a person may be answering).
const PARK_FOR: Duration = Duration::from_secs(300);
/// At most this many calls wait for their client at once; beyond it a backend's request is
/// refused as if the client lacked the capability (the call still completes or fails).
const MAX_PARKED: usize = 10_000;
/// After the first server request, how long further ones are gathered into the same round
/// (a backend that asks several things at once sends them back to back).
const GATHER: Duration = Duration::from_millis(50);

/// One server request of a parked call, shown to the client under `key`.
pub(crate) struct Asked {
    pub key: String,
    /// The backend's id for it (raw JSON).
    pub backend_id: String,
    /// `{"method":…,"params":…}` as the client sees it.
    pub request: String,
}

/// A call waiting for the client's `inputResponses`.
pub(crate) struct Parked {
    pub call: Running,
    pub asked: Vec<Asked>,
    pub principal: String,
    pub digest: [u8; 32],
}

/// A call in progress on a legacy backend session.
pub(crate) struct Running {
    pub call: BackendCall,
    pub rewrite: ResultRewrite,
    pub method: String,
    pub caps: ClientCaps,
    pub log_level: Option<u8>,
    /// `inputResponses` the client sent with this attempt: a backend request whose key is
    /// among them is answered at once instead of parking the call.
    pub preset: serde_json::Map<String, serde_json::Value>,
}

impl Drop for Running {
    /// A call abandoned before its response (client gone, state expired) is cancelled upstream.
    fn drop(&mut self) {
        if !self.call.is_finished() {
            self.call.cancel_upstream("the client went away");
        }
    }
}

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

pub async fn call(shared: &Arc<Shared>, access: Access, req: ModernRequest, mut target: Target) -> Response {
    target.params = mcpgate_protocol::modern::without_protocol_meta(&target.params);
    let principal = access.principal().unwrap_or_default();
    let params = req.params_value();
    let digest = request_digest(&req.method, &params);
    if let Some(state) = params.get("requestState") {
        let Some(state) = state.as_str() else {
            return error(StatusCode::OK, Some(&req.id), &RpcError::new(ErrorCode::InvalidParams, "requestState must be a string"));
        };
        return resume(shared, &req, state, &principal, &digest, params.get("inputResponses")).await;
    }
    let deadline = Instant::now() + target.backend.timeouts.call;
    let credential = match timeout_at(deadline, credential(shared, &access, &target.backend, target.tool.as_deref())).await {
        Ok(Ok(c)) => c,
        Ok(Err(e)) => return error(StatusCode::OK, Some(&req.id), &e),
        Err(_) => return error(StatusCode::OK, Some(&req.id), &unavailable(&target.backend, &UpstreamError::Timeout)),
    };
    let session = match stateless_session(shared, &access, &req) {
        Ok(s) => s,
        Err(e) => return error(StatusCode::SERVICE_UNAVAILABLE, Some(&req.id), &e),
    };
    let (backend, rewrite) = (target.backend.clone(), target.rewrite);
    // Calls of many modern clients share the session: each is registered under a key of its own.
    let key = format!("bridged-{:032x}", rand::random::<u128>());
    access.meter.upstream_sent();
    let call = match timeout_at(deadline, BackendCall::open(&session, target, credential, &key)).await {
        Ok(Ok(call)) => call,
        Ok(Err(e)) => return error(StatusCode::OK, Some(&req.id), &unavailable(&backend, &e)),
        Err(_) => return error(StatusCode::OK, Some(&req.id), &unavailable(&backend, &UpstreamError::Timeout)),
    };
    let running = Running {
        call,
        rewrite,
        method: req.method.clone(),
        caps: req.caps,
        log_level: req.log_level,
        preset: match params.get("inputResponses") {
            Some(serde_json::Value::Object(m)) => m.clone(),
            _ => serde_json::Map::new(),
        },
    };
    start(shared, running, req.id.clone(), principal, digest, deadline).await
}

/// The gateway's session with legacy backends for one stateless caller: keyed by the
/// authenticated principal and the client capabilities declared, so two identities never
/// share a backend session (and a backend only sees capabilities this caller declared).
fn stateless_session(shared: &Shared, access: &Access, req: &ModernRequest) -> Result<Arc<ClientSession>, RpcError> {
    let principal = access.principal();
    let mut h = DefaultHasher::new();
    principal.hash(&mut h);
    req.capabilities.hash(&mut h);
    let id = format!("stateless-{:016x}", h.finish());
    if let Some(s) = shared.stateless.get(&id)
        && s.principal == principal
    {
        return Ok(s);
    }
    let s = ClientSession::internal(&shared.session_ctx(), id, LATEST_LEGACY, req.capabilities.clone(), req.client_info.clone(), principal);
    match shared.stateless.insert_internal(s.clone(), &shared.config.load().limits.sessions()) {
        Ok(Some(evicted)) => drop(tokio::spawn(async move { evicted.close(true).await })),
        Ok(None) => {}
        Err(_) => return Err(RpcError::new(ErrorCode::Internal, "too many sessions; try again later")),
    }
    Ok(s)
}

async fn start(shared: &Arc<Shared>, running: Running, client_id: String, principal: String, digest: [u8; 32], deadline: Instant) -> Response {
    let (tx, rx) = mpsc::channel(16);
    respond_inline(Box::pin(drive(shared.clone(), running, client_id, principal, digest, deadline, tx)), rx).await
}

/// Relays the call's messages until its response, or until the backend asks the client
/// something: then the call is parked and the client gets `input_required`.
async fn drive(
    shared: Arc<Shared>,
    mut call: Running,
    client_id: String,
    principal: String,
    digest: [u8; 32],
    deadline: Instant,
    tx: mpsc::Sender<(Bytes, bool)>,
) {
    let mut asked: Vec<Asked> = Vec::new();
    let mut gather_until: Option<Instant> = None;
    loop {
        let next = tokio::select! {
            () = tx.closed() => return,
            () = sleep_until_opt(gather_until) => break,
            n = call.call.next_raw(deadline) => n,
        };
        let msg = match next {
            Ok(m) => m,
            Err(e) => return send_final(&tx, unavailable(&call.call.backend, &e).response(Some(&client_id))).await,
        };
        if msg.is_final {
            let out = final_response(&call.call.backend, call.rewrite, &msg.bytes, &client_id, true)
                .unwrap_or_else(|| unavailable(&call.call.backend, &UpstreamError::Protocol("unreadable response".into())).response(Some(&client_id)));
            return send_final(&tx, out).await;
        }
        let Ok(env) = Envelope::parse(&msg.bytes) else { continue };
        match env.kind() {
            Some(Kind::Request) => {
                let method = env.method().unwrap_or_default().into_owned();
                let (Some(id), true) = (env.id(), may_require_input(&call.method) && call.caps.allows(&method)) else {
                    refuse(&call.call.conn, &env, &format!("the client did not declare the capability for {method}"));
                    continue;
                };
                if shared.bridges.len() >= MAX_PARKED {
                    tracing::warn!(server = %call.call.backend.name, "too many calls waiting for input; refusing {method}");
                    refuse(&call.call.conn, &env, "the gateway has too many calls waiting for input; try again later");
                    continue;
                }
                let mut w = ObjectWriter::new();
                w.raw("method", &json_string(&method));
                if let Some(p) = env.get("params") {
                    w.raw("params", p.get());
                }
                let request = String::from_utf8(w.finish()).unwrap_or_default();
                let key = input_key(&env, &asked).unwrap_or_else(|| format!("{}-{}", capability_of(&method), asked.len() + 1));
                if let Some(answer) = call.preset.get(&key).filter(|a| check_answer(&request, a).is_ok()) {
                    // The client already sent this answer (e.g. a retry that asks again).
                    let reply = format!(r#"{{"jsonrpc":"2.0","id":{},"result":{}}}"#, id.get(), answer);
                    if let Err(e) = call.call.conn.respond(reply.into_bytes()).await {
                        return send_final(&tx, unavailable(&call.call.backend, &e).response(Some(&client_id))).await;
                    }
                    continue;
                }
                asked.push(Asked { key, backend_id: id.get().to_owned(), request });
                gather_until.get_or_insert_with(|| Instant::now() + GATHER);
            }
            Some(Kind::Notification) if mcpgate_protocol::errors::is_list_changed(&env) => call.call.backend.request_relist(),
            Some(Kind::Notification) => {
                if !wanted(&env, call.log_level) {
                    continue;
                }
                if tx.send((msg.bytes, false)).await.is_err() {
                    return;
                }
            }
            _ => {}
        }
    }
    park(&shared, Parked { call, asked, principal, digest }, &client_id, &tx).await;
}

async fn sleep_until_opt(t: Option<Instant>) {
    match t {
        Some(t) => tokio::time::sleep_until(t).await,
        None => std::future::pending().await,
    }
}

/// The key a legacy backend chose for its request (`params._meta["mcpgate/inputKey"]`), when it
/// is usable and not taken in this round.
fn input_key(request: &Envelope<'_>, asked: &[Asked]) -> Option<String> {
    let params = request.params_object().ok().flatten()?;
    let meta = Envelope::parse_raw(params.get("_meta")?).ok()?;
    let key = meta.str(INPUT_KEY_META)?.into_owned();
    (!key.is_empty() && key.len() <= 128 && !asked.iter().any(|a| a.key == key)).then_some(key)
}

/// `_meta` key by which a legacy backend may name an input request (a gateway convention; a
/// backend that does not set it gets keys like `elicitation-1`).
pub const INPUT_KEY_META: &str = "mcpgate/inputKey";

/// A request-scoped notification for a modern client: log messages only when it asked for
/// them (`_meta` logLevel) and at or above that level.
fn wanted(env: &Envelope<'_>, log_level: Option<u8>) -> bool {
    if env.method().as_deref() != Some("notifications/message") {
        return true;
    }
    let Some(min) = log_level else { return false };
    let level = env.params_object().ok().flatten().and_then(|p| p.str("level").and_then(|l| mcpgate_protocol::modern::level_rank(&l)));
    level.is_none_or(|l| l >= min)
}

/// Stores the call and sends the client `input_required` with a fresh sealed state.
async fn park(shared: &Arc<Shared>, parked: Parked, client_id: &str, tx: &mpsc::Sender<(Bytes, bool)>) {
    let id: [u8; 16] = rand::random();
    let expires = now_ms() + PARK_FOR.as_millis() as u64;
    let replica = shared.cluster.as_ref().map_or("local", |c| c.replica.as_str());
    let state = Sealer::seal(&shared.keys.load(), &id, expires, replica, &parked.principal, &parked.digest);
    let mut requests = ObjectWriter::new();
    for a in &parked.asked {
        requests.raw(&a.key, &a.request);
    }
    let requests = String::from_utf8(requests.finish()).unwrap_or_default();
    let mut result = ObjectWriter::new();
    result.string("resultType", "input_required").raw("inputRequests", &requests).string("requestState", &state);
    let result = String::from_utf8(result.finish()).unwrap_or_default();
    tracing::debug!(server = %parked.call.call.backend.name, asked = parked.asked.len(), "call parked for input");
    shared.bridges.insert(id, Box::new(parked));
    // Forget the call when the client never comes back (dropping it cancels upstream).
    let weak = Arc::downgrade(shared);
    tokio::spawn(async move {
        sleep(PARK_FOR + Duration::from_secs(1)).await;
        if let Some(shared) = weak.upgrade() {
            let gone = shared.bridges.take(&id);
            drop(gone);
        }
    });
    send_final(tx, result_response(client_id, &result)).await;
}

/// The client's retry: checks the state, then continues the parked call, here or (in a
/// cluster) on the replica holding it.
async fn resume(shared: &Arc<Shared>, req: &ModernRequest, state: &str, principal: &str, digest: &[u8; 32], responses: Option<&serde_json::Value>) -> Response {
    let (id, holder) = match Sealer::open(&shared.keys.load(), state, principal, digest, now_ms()) {
        Ok(opened) => opened,
        Err(e) => {
            tracing::warn!(target: "mcpgate::audit", method = %req.method, "requestState refused: {}", e.message());
            return error(StatusCode::OK, Some(&req.id), &RpcError::new(ErrorCode::InvalidParams, e.message()));
        }
    };
    if let Some(cluster) = shared.cluster.as_ref().filter(|c| c.replica != holder) {
        return Box::pin(resume_elsewhere(shared, cluster, req, id, holder, responses)).await;
    }
    let (tx, rx) = mpsc::channel(16);
    match continue_parked(shared, id, req.id.clone(), req.log_level, responses, tx).await {
        Err(e) => error(StatusCode::OK, Some(&req.id), &e),
        Ok(None) => respond(rx).await,
        Ok(Some(work)) => respond_inline(work, rx).await,
    }
}

/// The rest of a parked call, driven from here on.
type Work = std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>;

/// Answers the parked call's pending backend requests with the client's `inputResponses` and
/// continues it, sending its messages on `tx`: `Ok(None)` when it was parked again (the new
/// `input_required` is on `tx`), `Ok(Some(work))` when `work` drives it on.
async fn continue_parked(
    shared: &Arc<Shared>,
    id: [u8; 16],
    request_id: String,
    log_level: Option<u8>,
    responses: Option<&serde_json::Value>,
    tx: mpsc::Sender<(Bytes, bool)>,
) -> Result<Option<Work>, RpcError> {
    let invalid = |msg: &str| RpcError::new(ErrorCode::InvalidParams, msg.to_owned());
    let empty = serde_json::Map::new();
    let responses = match responses {
        None => &empty,
        Some(serde_json::Value::Object(m)) => m,
        Some(_) => return Err(invalid("inputResponses must be an object")),
    };
    let Some(mut parked) = shared.bridges.take(&id).and_then(|p| p.downcast::<Parked>().ok()) else {
        return Err(invalid("requestState was already used, or its call has ended; send the request again without it"));
    };
    // Check every answer before delivering any, so a bad one changes nothing.
    for a in &parked.asked {
        if let Some(answer) = responses.get(&a.key)
            && let Err(why) = check_answer(&a.request, answer)
        {
            let msg = format!("inputResponses[{:?}]: {why}", a.key);
            shared.bridges.insert(id, parked);
            return Err(invalid(&msg));
        }
    }
    let mut missing = Vec::new();
    for a in std::mem::take(&mut parked.asked) {
        match responses.get(&a.key) {
            Some(answer) => {
                let reply = format!(r#"{{"jsonrpc":"2.0","id":{},"result":{}}}"#, a.backend_id, answer);
                if let Err(e) = parked.call.call.conn.respond(reply.into_bytes()).await {
                    return Err(unavailable(&parked.call.call.backend, &e));
                }
            }
            None => missing.push(a),
        }
    }
    if !missing.is_empty() {
        // Ask again for what the client left out, under a fresh state.
        parked.asked = missing;
        park(shared, *parked, &request_id, &tx).await;
        return Ok(None);
    }
    let Parked { mut call, principal, digest, .. } = *parked;
    call.log_level = log_level;
    call.preset = responses.clone();
    let deadline = Instant::now() + call.call.backend.timeouts.call;
    Ok(Some(Box::pin(drive(shared.clone(), call, request_id, principal, digest, deadline, tx))))
}

/// How long a retry forwarded to the replica holding its call waits for the first word back
/// (a replica that is gone never answers: the call ended with it).
const RESUME_WAIT: Duration = Duration::from_secs(5);

/// A retry whose call another replica holds: forwarded over the bus, its answer streamed back.
async fn resume_elsewhere(
    shared: &Arc<Shared>,
    cluster: &Arc<crate::cluster::Cluster>,
    req: &ModernRequest,
    id: [u8; 16],
    holder: String,
    responses: Option<&serde_json::Value>,
) -> Response {
    let corr = format!("{:032x}", rand::random::<u128>());
    let mut replies = shared.resumes.register(&corr);
    let params = responses.map_or_else(|| "null".to_owned(), |r| r.to_string());
    let forward =
        ResumeRequest { corr: corr.clone(), reply_to: cluster.replica.clone(), call: hex(&id), request_id: req.id.clone(), params, log_level: req.log_level };
    cluster.send(To::Replica(holder), &BusMessage::Resume(Box::new(forward))).await;
    let first = tokio::time::timeout(RESUME_WAIT, replies.recv()).await.ok().flatten();
    let Some(first) = first else {
        shared.resumes.forget(&corr);
        let e = RpcError::new(ErrorCode::InvalidParams, "requestState was already used, or its call has ended; send the request again without it");
        return error(StatusCode::OK, Some(&req.id), &e);
    };
    let (tx, rx) = mpsc::channel(16);
    let _ = tx.try_send(first);
    tokio::spawn(async move {
        while let Some(m) = replies.recv().await {
            let last = m.1;
            if tx.send(m).await.is_err() || last {
                return;
            }
        }
    });
    respond(rx).await
}

/// The other side: a retry another replica forwarded for a call parked here. Its messages go
/// back over the bus.
pub async fn resume_for_replica(shared: &Arc<Shared>, req: ResumeRequest) {
    let Some(cluster) = shared.cluster.clone() else { return };
    let reply = move |message: Vec<u8>, last: bool, cluster: &Arc<crate::cluster::Cluster>, to: &str, corr: &str| {
        let msg = BusMessage::ResumeReply { corr: corr.to_owned(), message: String::from_utf8_lossy(&message).into_owned(), last };
        let (cluster, to) = (cluster.clone(), to.to_owned());
        async move { cluster.send(To::Replica(to), &msg).await }
    };
    let Some(id) = unhex::<16>(&req.call) else { return };
    let responses: Option<serde_json::Value> = serde_json::from_str(&req.params).ok().filter(|v: &serde_json::Value| !v.is_null());
    let (tx, mut rx) = mpsc::channel(16);
    match continue_parked(shared, id, req.request_id.clone(), req.log_level, responses.as_ref(), tx).await {
        Err(e) => return reply(e.response(Some(&req.request_id)), true, &cluster, &req.reply_to, &req.corr).await,
        Ok(Some(work)) => drop(tokio::spawn(work)),
        Ok(None) => {}
    }
    while let Some((bytes, last)) = rx.recv().await {
        reply(bytes.to_vec(), last, &cluster, &req.reply_to, &req.corr).await;
        if last {
            return;
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex<const N: usize>(s: &str) -> Option<[u8; N]> {
    let mut out = [0u8; N];
    if s.len() != N * 2 {
        return None;
    }
    for (i, b) in out.iter_mut().enumerate() {
        *b = u8::from_str_radix(s.get(i * 2..i * 2 + 2)?, 16).ok()?;
    }
    Some(out)
}

/// The minimum an answer must be to be worth delivering: an object shaped like the result of
/// the request it answers.
fn check_answer(request: &str, answer: &serde_json::Value) -> Result<(), String> {
    let obj = answer.as_object().ok_or("must be an object")?;
    let method = Envelope::parse(request.as_bytes()).ok().and_then(|e| e.str("method").map(|m| m.into_owned())).unwrap_or_default();
    match method.as_str() {
        "elicitation/create" => match obj.get("action").and_then(|a| a.as_str()) {
            Some("accept" | "decline" | "cancel") => Ok(()),
            _ => Err("an elicitation result needs action accept, decline or cancel".into()),
        },
        "sampling/createMessage" if !obj.contains_key("content") => Err("a sampling result needs content".into()),
        "roots/list" if !obj.get("roots").is_some_and(|r| r.is_array()) => Err("a roots result needs a roots array".into()),
        _ => Ok(()),
    }
}
