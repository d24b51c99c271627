//! `/metrics`: every series and the gauges read from the gateway's state, in the
//! OpenMetrics text format (prometheus-client's encoder). Runs per scrape; nothing here is
//! on the call path.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use mcpgate_credentials::{HistogramSnapshot, RequestResult};
use prometheus_client::encoding::{DescriptorEncoder, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

use super::labels::{AUTH_FAILURES, AUTHZ_REASONS, BACKEND_ERRORS, ERAS, KINDS, METHODS, OUTCOMES, SOURCES};
use super::series::{Series, read, request_index};

/// Values read from the gateway's state at scrape time.
#[derive(Debug, Default)]
pub struct Gauges {
    /// (server, era, up).
    pub backends: Vec<(String, &'static str, bool)>,
    /// (server, kind, count).
    pub catalog: Vec<(String, &'static str, usize)>,
    /// (server, withheld items).
    pub withheld: Vec<(String, usize)>,
    pub client_sessions: usize,
    pub stateless_sessions: usize,
    pub parked_calls: usize,
    pub rate_limit_buckets: usize,
}

pub fn render(series: &Arc<Series>, gauges: Gauges) -> String {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(Scrape { series: series.clone(), gauges }));
    let mut out = String::with_capacity(16 * 1024);
    if prometheus_client::encoding::text::encode(&mut out, &registry).is_err() {
        out.clear();
    }
    out
}

#[derive(Debug)]
struct Scrape {
    series: Arc<Series>,
    gauges: Gauges,
}

type Labels<'a> = Vec<(&'static str, &'a str)>;

/// A server and its credential failures by reason.
type Failures = (Arc<str>, Vec<(&'static str, u64)>);

fn counters<'a>(enc: &mut DescriptorEncoder, name: &str, help: &str, rows: impl IntoIterator<Item = (Labels<'a>, u64)>) -> std::fmt::Result {
    let mut m = enc.encode_descriptor(name, help, None, MetricType::Counter)?;
    for (labels, v) in rows {
        m.encode_family(&labels)?.encode_counter::<NoLabelSet, u64, u64>(&v, None)?;
    }
    Ok(())
}

fn gauges<'a>(enc: &mut DescriptorEncoder, name: &str, help: &str, rows: impl IntoIterator<Item = (Labels<'a>, i64)>) -> std::fmt::Result {
    let mut m = enc.encode_descriptor(name, help, None, MetricType::Gauge)?;
    for (labels, v) in rows {
        m.encode_family(&labels)?.encode_gauge(&v)?;
    }
    Ok(())
}

fn histogram(m: &mut MetricEncoder<'_>, labels: &Labels<'_>, h: &HistogramSnapshot) -> std::fmt::Result {
    m.encode_family(labels)?.encode_histogram::<NoLabelSet>(h.sum, h.count, &h.buckets, None)
}

impl prometheus_client::collector::Collector for Scrape {
    fn encode(&self, mut enc: DescriptorEncoder) -> std::fmt::Result {
        let s = &self.series;
        let mut rows = Vec::new();
        for (mi, method) in METHODS.iter().enumerate() {
            for (ei, era) in ERAS.iter().enumerate() {
                for (oi, outcome) in OUTCOMES.iter().enumerate() {
                    let v = read(&s.requests[request_index(mi as u8, ei, oi)]);
                    if v > 0 {
                        rows.push((vec![("mcp_method_name", *method), ("mcp_protocol_era", *era), ("outcome", *outcome)], v));
                    }
                }
            }
        }
        counters(&mut enc, "mcpgate_requests", "MCP messages POSTed to the gateway, by method, client era and outcome.", rows)?;

        let items: Vec<_> = s.items.lock().unwrap_or_else(|p| p.into_inner()).values().cloned().collect();
        let mut gateway_rows = Vec::new();
        let mut upstream_rows = Vec::new();
        for item in &items {
            let name_key = if METHODS[item.method as usize] == "prompts/get" { "gen_ai_prompt_name" } else { "gen_ai_tool_name" };
            let base = |error: &'static str| {
                let mut l: Labels<'_> = vec![("mcp_method_name", METHODS[item.method as usize]), ("mcp_server", &item.server)];
                if let Some(n) = &item.name {
                    l.push((name_key, n));
                }
                if !error.is_empty() {
                    l.push(("error_type", error));
                }
                l
            };
            let mut add = |error: &'static str, d: &super::series::Durations| {
                let g = d.gateway.snapshot();
                if g.count > 0 {
                    gateway_rows.push((base(error), g));
                }
                let u = d.upstream.snapshot();
                if u.count > 0 {
                    upstream_rows.push((base(error), u));
                }
            };
            add("", &item.ok);
            let errors: Vec<_> = item.errors.lock().unwrap_or_else(|p| p.into_inner()).clone();
            for (e, d) in &errors {
                add(e.as_str(), d);
            }
        }
        let mut m = enc.encode_descriptor(
            "mcp_server_operation_duration_seconds",
            "Routed calls (tools/call, prompts/get, resources/*, completion/complete), from arrival at the gateway to the final answer.",
            None,
            MetricType::Histogram,
        )?;
        for (l, h) in &gateway_rows {
            histogram(&mut m, l, h)?;
        }
        let mut m = enc.encode_descriptor(
            "mcp_client_operation_duration_seconds",
            "The backend's part of routed calls: from sending the call to the backend to its final answer.",
            None,
            MetricType::Histogram,
        )?;
        for (l, h) in &upstream_rows {
            histogram(&mut m, l, h)?;
        }

        let rows = AUTH_FAILURES.iter().enumerate().map(|(i, r)| (vec![("reason", *r)], read(&s.auth_failures[i]))).filter(|(_, v)| *v > 0);
        counters(&mut enc, "mcpgate_auth_failures", "Requests refused because their bearer token could not be verified, by reason.", rows)?;

        let servers: Vec<_> = s.servers.lock().unwrap_or_else(|p| p.into_inner()).values().cloned().collect();
        let mut rows = Vec::new();
        for sv in &servers {
            for (ki, kind) in KINDS.iter().enumerate() {
                for (ri, reason) in AUTHZ_REASONS.iter().enumerate() {
                    let v = read(&sv.authz[ki][ri]);
                    if v > 0 {
                        let decision = if ri < 6 { "allow" } else { "deny" };
                        rows.push((vec![("mcp_server", &*sv.name), ("kind", *kind), ("decision", decision), ("reason", *reason)], v));
                    }
                }
            }
        }
        counters(&mut enc, "mcpgate_authz_decisions", "Permission decisions on call-type requests, by server, kind, decision and reason.", rows)?;

        let mut rows = Vec::new();
        for sv in &servers {
            for (i, source) in SOURCES.iter().enumerate() {
                let v = read(&sv.credentials[i]);
                if v > 0 {
                    rows.push((vec![("mcp_server", &*sv.name), ("source", *source)], v));
                }
            }
        }
        counters(&mut enc, "mcpgate_credentials_resolved", "Backend credentials resolved for calls, by server and the source that gave them.", rows)?;
        let failures: Vec<Failures> =
            servers.iter().map(|sv| (sv.name.clone(), sv.credential_failures.lock().unwrap_or_else(|p| p.into_inner()).clone())).collect();
        let rows = failures.iter().flat_map(|(name, f)| f.iter().map(move |(reason, v)| (vec![("mcp_server", &**name), ("reason", *reason)], *v)));
        counters(
            &mut enc,
            "mcpgate_credential_failures",
            "Calls refused because no credential could be resolved for the backend, by server and reason.",
            rows,
        )?;

        let mut rows = Vec::new();
        for sv in &servers {
            for (i, cause) in BACKEND_ERRORS.iter().enumerate() {
                let v = read(&sv.backend_errors[i]);
                if v > 0 {
                    rows.push((vec![("mcp_server", &*sv.name), ("error_type", *cause)], v));
                }
            }
        }
        counters(&mut enc, "mcpgate_backend_errors", "Calls the gateway could not complete with their backend, by server and cause.", rows)?;

        let c = s.credentials.snapshot();
        let rows = [
            (vec![("source", "vault"), ("result", "hit")], c.vault_cache_hits),
            (vec![("source", "vault"), ("result", "miss")], c.vault_reads),
            (vec![("source", "token_exchange"), ("result", "hit")], c.exchange_cache_hits),
            (vec![("source", "token_exchange"), ("result", "miss")], c.exchanges),
            (vec![("source", "client_credentials"), ("result", "hit")], c.client_credentials_cache_hits),
            (vec![("source", "client_credentials"), ("result", "miss")], c.client_credentials_requests),
        ];
        counters(&mut enc, "mcpgate_credential_cache", "Credential lookups answered from the cache (hit) or by a request (miss), by source.", rows)?;
        counters(
            &mut enc,
            "mcpgate_credential_coalesced_waits",
            "Credential lookups that waited for a request another call had already started, instead of sending their own.",
            [(vec![], c.coalesced_waits)],
        )?;
        let mut rows = Vec::new();
        for (upstream, u) in [("vault", &s.credentials.vault), ("idp", &s.credentials.idp)] {
            for r in RequestResult::ALL {
                rows.push((vec![("upstream", upstream), ("result", r.as_str())], u.count(r)));
            }
        }
        counters(
            &mut enc,
            "mcpgate_credential_upstream_requests",
            "HTTP requests to Vault and the IdP (token exchange, client credentials, discovery), by result.",
            rows,
        )?;
        let mut m = enc.encode_descriptor(
            "mcpgate_credential_upstream_duration_seconds",
            "Latency of HTTP requests to Vault and the IdP, to the response head.",
            None,
            MetricType::Histogram,
        )?;
        histogram(&mut m, &vec![("upstream", "vault")], &s.credentials.vault.latency.snapshot())?;
        histogram(&mut m, &vec![("upstream", "idp")], &s.credentials.idp.latency.snapshot())?;

        let rules: Vec<_> = s.rules.lock().unwrap_or_else(|p| p.into_inner()).values().cloned().collect();
        let rows = rules.iter().map(|r| (vec![("rule", &*r.rule)], read(&r.rejected)));
        counters(&mut enc, "mcpgate_rate_limited", "Calls refused by a rate limit (the backend was not called), by rule.", rows)?;
        let rows = rules.iter().map(|r| (vec![("rule", &*r.rule)], read(&r.store_errors)));
        counters(
            &mut enc,
            "mcpgate_rate_limit_store_errors",
            "Rate-limit checks the bucket store could not answer, by rule (the rule's on_store_error decided).",
            rows,
        )?;

        let rows = [(vec![("result", "ok")], read(&s.reloads[0])), (vec![("result", "failed")], read(&s.reloads[1]))];
        counters(&mut enc, "mcpgate_config_reloads", "Config reloads applied (ok) or rejected (failed).", rows)?;
        let rows = ["tools", "prompts", "resources"].iter().enumerate().map(|(i, k)| (vec![("kind", *k)], read(&s.list_changed[i])));
        counters(&mut enc, "mcpgate_list_changed", "Catalog changes announced to clients (list_changed notifications sent per change, before fan-out).", rows)?;
        counters(&mut enc, "mcpgate_trace_spans_dropped", "Spans dropped because the trace export queue was full.", [(vec![], read(&s.spans_dropped))])?;
        counters(&mut enc, "mcpgate_trace_export_failures", "Batches of spans the OTLP endpoint did not take.", [(vec![], read(&s.span_exports_failed))])?;
        counters(
            &mut enc,
            "mcpgate_audit_lines_dropped",
            "Audit lines that could not be written (the sink failed or its queue was full).",
            [(vec![], read(&s.audit_lines_dropped))],
        )?;

        let g = &self.gauges;
        let rows = g.backends.iter().map(|(name, era, up)| (vec![("mcp_server", name.as_str()), ("mcp_protocol_era", *era)], i64::from(*up)));
        gauges(&mut enc, "mcpgate_backend_up", "1 when the backend is reachable and listed, 0 otherwise; by server and its protocol era.", rows)?;
        let rows = g.catalog.iter().map(|(name, kind, n)| (vec![("mcp_server", name.as_str()), ("kind", *kind)], *n as i64));
        gauges(&mut enc, "mcpgate_catalog_items", "Items each backend contributes to the catalog, by kind.", rows)?;
        let rows = g.withheld.iter().map(|(name, n)| (vec![("mcp_server", name.as_str())], *n as i64));
        gauges(&mut enc, "mcpgate_catalog_withheld_items", "Items withheld from the catalog (invalid or colliding names), by server.", rows)?;
        gauges(&mut enc, "mcpgate_client_sessions", "Open legacy-era client sessions.", [(vec![], g.client_sessions as i64)])?;
        gauges(
            &mut enc,
            "mcpgate_stateless_backend_sessions",
            "Backend sessions the gateway holds for stateless (2026-07-28) callers of legacy backends.",
            [(vec![], g.stateless_sessions as i64)],
        )?;
        gauges(&mut enc, "mcpgate_parked_calls", "Calls parked waiting for a modern client's input_required retry.", [(vec![], g.parked_calls as i64)])?;
        let rows = [(vec![("kind", "post")], s.open_streams[0].load(Ordering::Relaxed)), (vec![("kind", "get")], s.open_streams[1].load(Ordering::Relaxed))];
        gauges(&mut enc, "mcpgate_open_streams", "Open SSE streams: answers to POSTs that stream, and GET streams.", rows)?;
        gauges(&mut enc, "mcpgate_rate_limit_buckets", "Token buckets held in this replica's memory.", [(vec![], g.rate_limit_buckets as i64)])?;
        let mut m = enc.encode_descriptor("mcpgate_build", "The running mcpgate version.", None, MetricType::Info)?;
        m.encode_info(&vec![("version", env!("CARGO_PKG_VERSION"))])?;
        Ok(())
    }
}
