//! Durations written as `30s`, `5m`, `250ms`.

use std::time::Duration;

use serde::{Deserialize, Deserializer};

pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let s = String::deserialize(d)?;
    humantime::parse_duration(s.trim()).map_err(|e| serde::de::Error::custom(format!("invalid duration {s:?} ({e}); write e.g. \"30s\", \"5m\" or \"250ms\"")))
}
