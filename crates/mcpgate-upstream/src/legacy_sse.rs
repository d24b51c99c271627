//! The 2024-11-05 HTTP+SSE transport: one GET stream carries every server message; the first
//! `endpoint` event names the URL to POST client messages to.

use bytes::Bytes;
use futures::StreamExt;
use http::HeaderMap;
use http::header::ACCEPT;
use mcpgate_protocol::sse;
use tokio::sync::{mpsc, oneshot};

use crate::error::UpstreamError;
use crate::mux::{Mux, MuxLink, Writer};

pub(crate) async fn connect(client: reqwest::Client, url: url::Url, headers: HeaderMap, events: mpsc::Sender<Bytes>) -> Result<MuxLink, UpstreamError> {
    let resp =
        client.get(url.clone()).headers(headers.clone()).header(ACCEPT, "text/event-stream").send().await.map_err(|e| UpstreamError::from_reqwest(&e))?;
    if !resp.status().is_success() {
        return Err(UpstreamError::Status { status: resp.status().as_u16() });
    }
    let mux = Mux::new(events);
    let (endpoint_tx, endpoint_rx) = oneshot::channel::<String>();
    let reader_mux = mux.clone();
    let task = tokio::spawn(async move {
        let mut endpoint_tx = Some(endpoint_tx);
        let mut body = resp.bytes_stream();
        let mut decoder = sse::Decoder::new();
        'read: while let Some(Ok(chunk)) = body.next().await {
            decoder.push(&chunk);
            loop {
                match decoder.next_event() {
                    Ok(Some(ev)) if ev.event.as_deref() == Some("endpoint") => {
                        if let Some(tx) = endpoint_tx.take() {
                            let _ = tx.send(ev.data);
                        }
                    }
                    Ok(Some(ev)) => reader_mux.dispatch(Bytes::from(ev.data)).await,
                    Ok(None) => break,
                    Err(_) => break 'read,
                }
            }
        }
        reader_mux.close_all();
    });
    let endpoint = endpoint_rx.await.map_err(|_| UpstreamError::Protocol("SSE stream ended before the endpoint event".into()))?;
    let endpoint = url.join(endpoint.trim()).map_err(|_| UpstreamError::Protocol("endpoint event is not a URL".into()))?;
    if endpoint.origin() != url.origin() {
        task.abort();
        return Err(UpstreamError::Protocol("endpoint event points to another origin".into()));
    }
    Ok(MuxLink { mux, writer: Writer::Post { client, endpoint, headers }, tasks: vec![task.abort_handle()], child: None })
}
