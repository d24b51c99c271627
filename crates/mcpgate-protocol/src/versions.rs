//! Protocol revisions the gateway speaks.

/// Legacy-era (session-based) revisions, newest first.
pub const LEGACY_VERSIONS: &[&str] = &["2025-11-25", "2025-06-18", "2025-03-26", "2024-11-05"];

/// The revision offered to backends and to clients that ask for one we do not know.
pub const LATEST_LEGACY: &str = "2025-11-25";

/// What a missing `MCP-Protocol-Version` header means (spec: assume 2025-03-26).
pub const DEFAULT_WHEN_ABSENT: &str = "2025-03-26";

/// The stateless revision; served only through the era-bridging code.
pub const MODERN_VERSION: &str = "2026-07-28";

/// `_meta` key that marks a modern-era request.
pub const META_PROTOCOL_VERSION: &str = "io.modelcontextprotocol/protocolVersion";

pub fn is_supported_legacy(v: &str) -> bool {
    LEGACY_VERSIONS.contains(&v)
}

/// The version a legacy `initialize` settles on: the client's when we speak it, else ours.
pub fn negotiate(requested: Option<&str>) -> &'static str {
    requested.and_then(|r| LEGACY_VERSIONS.iter().find(|v| **v == r)).copied().unwrap_or(LATEST_LEGACY)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn negotiation_echoes_known_versions_and_offers_latest_otherwise() {
        assert_eq!(negotiate(Some("2025-06-18")), "2025-06-18");
        assert_eq!(negotiate(Some("1999-01-01")), LATEST_LEGACY);
        assert_eq!(negotiate(None), LATEST_LEGACY);
    }
}
