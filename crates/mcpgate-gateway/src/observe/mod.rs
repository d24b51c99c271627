//! Observability: the series behind `/metrics` (`series`, rendered by `scrape`), the
//! per-request meter the request path marks (`meter`), how an answer ended (`outcome`),
//! closed label sets (`labels`), the audit sink (`audit`), and traces (`trace`: W3C trace
//! context in and out; `otel`: the OTLP exporter).
//!
//! Never records a token or a secret, and never makes a metric label value out of raw client
//! input: tool and server labels come from the catalog and the config only.

pub mod audit;
pub mod labels;
pub mod meter;
pub mod otel;
pub mod outcome;
pub mod scrape;
pub mod series;
pub mod trace;

pub use labels::{CallError, Era, Outcome};
pub use meter::RequestMeter;
pub use series::Series;
