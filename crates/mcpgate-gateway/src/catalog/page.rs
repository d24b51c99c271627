//! Opaque list cursors. A cursor names the last item of the previous page, so pages stay
//! consistent when the catalog changes between requests (no item is skipped or repeated
//! because of an index shift).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use super::Entry;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor(String);

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid cursor")]
pub struct CursorError;

const TAG: &str = "after:";

impl Cursor {
    pub fn after(name: &str) -> Self {
        Self(URL_SAFE_NO_PAD.encode(format!("{TAG}{name}")))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    fn decode(s: &str) -> Result<String, CursorError> {
        let bytes = URL_SAFE_NO_PAD.decode(s).map_err(|_| CursorError)?;
        let text = String::from_utf8(bytes).map_err(|_| CursorError)?;
        text.strip_prefix(TAG).map(str::to_owned).ok_or(CursorError)
    }
}

/// One page of `items` (sorted by exposed name) starting after `cursor`.
pub fn page<'a>(items: &'a [&'a Entry], cursor: Option<&str>, size: usize) -> Result<(&'a [&'a Entry], Option<Cursor>), CursorError> {
    let start = match cursor {
        None | Some("") => 0,
        Some(c) => {
            let after = Cursor::decode(c)?;
            items.partition_point(|e| e.exposed.as_str() <= after.as_str())
        }
    };
    let end = (start + size).min(items.len());
    let next = (end < items.len()).then(|| Cursor::after(&items[end - 1].exposed));
    Ok((&items[start..end], next))
}

#[cfg(test)]
mod tests {
    use super::*;
    use mcpgate_protocol::names::ServerName;
    use serde_json::value::RawValue;

    fn entries(names: &[&str]) -> Vec<Entry> {
        names
            .iter()
            .map(|n| Entry {
                exposed: (*n).into(),
                server: ServerName::parse("s").expect("n"),
                backend_name: (*n).into(),
                json: RawValue::from_string("{}".into()).expect("json"),
                annotations: None,
                param_headers: Vec::new(),
                series: Default::default(),
            })
            .collect()
    }

    #[test]
    fn pages_walk_every_item_once() {
        let e = entries(&["a", "b", "c", "d", "e"]);
        let refs: Vec<&Entry> = e.iter().collect();
        let mut seen = Vec::new();
        let mut cursor: Option<Cursor> = None;
        loop {
            let (items, next) = page(&refs, cursor.as_ref().map(Cursor::as_str), 2).expect("page");
            seen.extend(items.iter().map(|e| e.exposed.clone()));
            match next {
                Some(c) => cursor = Some(c),
                None => break,
            }
        }
        assert_eq!(seen, ["a", "b", "c", "d", "e"]);
    }

    #[test]
    fn garbage_cursor_is_rejected() {
        let e = entries(&["a"]);
        let refs: Vec<&Entry> = e.iter().collect();
        assert_eq!(page(&refs, Some("not-a-cursor!"), 2).err(), Some(CursorError));
        assert_eq!(page(&refs, Some(&URL_SAFE_NO_PAD.encode("x")), 2).err(), Some(CursorError));
    }
}
