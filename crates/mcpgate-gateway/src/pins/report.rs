//! What pinning found in one catalog build: items held back, definitions served although
//! changed, and definitions to record. Made by `catalog::build`, read by [`super::Pins`], the
//! admin endpoint and `/status`.

use super::Observation;

/// An item held back by pinning (`enforce`) until its definition is approved.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Quarantined {
    pub kind: &'static str,
    /// The backend's own name.
    pub name: String,
    /// The name it would be exposed under.
    pub exposed: String,
    pub reason: &'static str,
    /// The hash of the definition the backend lists now.
    pub hash: String,
    /// The hash of the approved definition, if any.
    pub approved: Option<String>,
}

/// A definition served in `record` mode although it differs from its pin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangedServed {
    pub server: String,
    pub kind: &'static str,
    pub name: String,
    pub hash: String,
    pub approved: String,
}

/// What pinning found in one catalog build, for the pin store and the audit log.
#[derive(Debug, Default)]
pub struct PinReport {
    /// Definitions to record (pending, or pinned on first use).
    pub observations: Vec<Observation>,
    pub changed_served: Vec<ChangedServed>,
}
