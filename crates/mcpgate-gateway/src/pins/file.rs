//! The pin file: read, checked, and changed under an exclusive lock with an atomic
//! replacement, so that concurrent writers (the gateway, `mcpgate pins` processes) never lose
//! each other's changes and a reader never sees half a file.
//!
//! Every change is read-modify-write under `<file>.lock` (an advisory `flock`): the newest
//! file is read, the change applied, and the result written to a temporary file in the same
//! directory, synced, renamed over the pin file, and the directory synced. A missing file is
//! an empty pin set. Blocking I/O: call from blocking contexts (`spawn_blocking`).

use std::fs::{self, File, OpenOptions};
use std::io::{ErrorKind, Write};
use std::path::{Path, PathBuf};

use super::set::{Applied, Change, ChangeError, PinSet};

/// The comment every pin file starts with.
const HEADER: &str = "# mcpgate pin file: approved tool and prompt definitions.\n\
# Review with `mcpgate pins list` / `mcpgate pins diff`, approve with `mcpgate pins approve`.\n\
# `pending` entries are definitions the gateway saw that differ from the approved one.\n";

/// Why the pin file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum PinFileError {
    #[error("pin file {path}: cannot read: {source}")]
    Read { path: String, source: std::io::Error },
    #[error("pin file {path}: {}", render(.problems))]
    Invalid { path: String, problems: Vec<(String, String)> },
    #[error("pin file {path}: cannot write: {source}")]
    Write { path: String, source: std::io::Error },
    #[error("pin file {path}: cannot take the lock {path}.lock: {source}")]
    Lock { path: String, source: std::io::Error },
    #[error(transparent)]
    Change(#[from] ChangeError),
}

fn render(problems: &[(String, String)]) -> String {
    problems.iter().map(|(path, what)| format!("{path}: {what}")).collect::<Vec<_>>().join("; ")
}

impl PinFileError {
    /// The problems with their key paths inside the pin file (empty for I/O errors).
    pub fn problems(&self) -> &[(String, String)] {
        match self {
            PinFileError::Invalid { problems, .. } => problems,
            _ => &[],
        }
    }
}

/// Reads and checks the pin file; a missing file is an empty set.
pub fn read(path: &Path) -> Result<PinSet, PinFileError> {
    let shown = path.display().to_string();
    let text = match fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(PinSet::default()),
        Err(source) => return Err(PinFileError::Read { path: shown, source }),
    };
    parse(&text).map_err(|problems| PinFileError::Invalid { path: shown, problems })
}

/// Parses pin-file text; problems carry their key path.
pub fn parse(text: &str) -> Result<PinSet, Vec<(String, String)>> {
    if text.trim().lines().all(|l| l.trim().is_empty() || l.trim_start().starts_with('#')) {
        return Ok(PinSet::default());
    }
    let de = yaml_serde::Deserializer::from_str(text);
    let set: PinSet = serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let path = if path == "." { "(top level)".to_owned() } else { path };
        vec![(path, e.inner().to_string())]
    })?;
    let problems = set.check();
    if problems.is_empty() { Ok(set) } else { Err(problems) }
}

/// The text of a pin file holding `set`.
pub fn render_set(set: &PinSet) -> String {
    let body = yaml_serde::to_string(set).unwrap_or_default();
    format!("{HEADER}{body}")
}

/// Applies `change` to the newest file content under the lock; writes only when something
/// changed. Returns the set as written (or as read, when unchanged) and what was done.
pub fn update(path: &Path, change: &Change, now: &str) -> Result<(PinSet, Applied), PinFileError> {
    let _lock = lock(path)?;
    let mut set = read(path)?;
    let applied = set.apply(change, now)?;
    if applied.changed {
        write_atomically(path, &render_set(&set))?;
    }
    Ok((set, applied))
}

/// An exclusive advisory lock on `<path>.lock`, released when dropped. The lock is on a
/// separate file because the pin file itself is replaced (a new inode) on every write.
fn lock(path: &Path) -> Result<File, PinFileError> {
    let lock_path = sidecar(path, ".lock");
    let err = |source| PinFileError::Lock { path: path.display().to_string(), source };
    let file = OpenOptions::new().create(true).truncate(false).read(true).write(true).open(&lock_path).map_err(err)?;
    file.lock().map_err(err)?;
    Ok(file)
}

fn sidecar(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.file_name().map(|n| n.to_os_string()).unwrap_or_default();
    name.push(suffix);
    path.with_file_name(name)
}

/// Writes `text` to a temporary file next to `path`, syncs it, renames it over `path` and
/// syncs the directory: readers see the old file or the new one, never a mix.
pub fn write_atomically(path: &Path, text: &str) -> Result<(), PinFileError> {
    let err = |source| PinFileError::Write { path: path.display().to_string(), source };
    let tmp = sidecar(path, &format!(".{}.{:x}.tmp", std::process::id(), rand::random::<u64>()));
    let result = (|| {
        let mut f = OpenOptions::new().create_new(true).write(true).open(&tmp)?;
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
        drop(f);
        fs::rename(&tmp, path)?;
        let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
        File::open(dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result.map_err(err)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kind::ItemKind;
    use crate::pins::set::{Observation, PinKind, Selection, Verdict};

    fn temp_dir(tag: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("mcpgate-pins-{tag}-{}-{:x}", std::process::id(), rand::random::<u32>()));
        fs::create_dir_all(&dir).expect("temp dir");
        dir
    }

    fn observe(name: &str, hash: &str) -> Change {
        let definition = serde_json::json!({"description": format!("the {name} tool"), "inputSchema": {"type": "object"}});
        Change::Observe(vec![Observation { server: "a".into(), kind: ItemKind::Tool, name: name.into(), hash: hash.into(), definition, first_use: false }])
    }

    #[test]
    fn a_missing_file_is_an_empty_set_and_changes_round_trip() {
        let dir = temp_dir("roundtrip");
        let path = dir.join("pins.yaml");
        assert_eq!(read(&path).expect("missing is empty"), PinSet::default());
        let hash = format!("sha256:{}", "a".repeat(64));
        update(&path, &observe("echo", &hash), "2026-01-01T00:00:00Z").expect("observe");
        let approve = Change::Approve { selection: Selection::All, hash: None, by: "cli".into() };
        let (_, applied) = update(&path, &approve, "2026-01-01T00:00:01Z").expect("approve");
        assert_eq!(applied.approved.len(), 1);
        let text = fs::read_to_string(&path).expect("file");
        assert!(text.starts_with("# mcpgate pin file"), "{text}");
        assert!(text.contains("description: the echo tool"), "the definition is readable in the file:\n{text}");
        assert_eq!(read(&path).expect("read").verdict("a", PinKind::Tool, "echo", &hash), Verdict::Approved);
        let leftovers: Vec<_> = fs::read_dir(&dir).expect("dir").filter_map(|e| e.ok()).filter(|e| e.file_name().to_string_lossy().ends_with(".tmp")).collect();
        assert!(leftovers.is_empty(), "no temporary files are left behind");
        let _ = fs::remove_dir_all(dir);
    }

    #[test]
    fn malformed_files_are_reported_with_the_key_path() {
        let e = parse("version: 1\nservers:\n  a:\n    tools:\n      echo:\n        approved: {hash: 5}\n").expect_err("invalid");
        assert!(e[0].0.contains("servers.a.tools.echo.approved"), "{e:?}");
        let e = parse("version: 1\nservers:\n  a:\n    tool: {}\n").expect_err("unknown key");
        assert!(e[0].0.contains("servers.a") && e[0].1.contains("tool"), "{e:?}");
        let e = parse("servers: [1, 2\n").expect_err("not YAML");
        assert!(!e.is_empty());
        assert_eq!(parse("# only comments\n\n").expect("empty"), PinSet::default());
    }

    #[test]
    fn an_unreadable_file_is_an_error_not_an_empty_set() {
        let dir = temp_dir("unreadable");
        // A directory where the file should be: reading fails (as root, permissions would not).
        let path = dir.join("pins.yaml");
        fs::create_dir_all(&path).expect("dir");
        assert!(matches!(read(&path), Err(PinFileError::Read { .. })));
        let _ = fs::remove_dir_all(dir);
    }

    #[test]
    fn concurrent_updates_never_lose_a_change() {
        let dir = temp_dir("concurrent");
        let path = dir.join("pins.yaml");
        let threads: Vec<_> = (0..16)
            .map(|i| {
                let path = path.clone();
                std::thread::spawn(move || {
                    let hash = format!("sha256:{:064x}", i);
                    update(&path, &observe(&format!("t{i}"), &hash), "2026-01-01T00:00:00Z").expect("update");
                })
            })
            .collect();
        for t in threads {
            t.join().expect("thread");
        }
        let set = read(&path).expect("read");
        assert_eq!(set.servers["a"].tools.len(), 16, "every writer's entry is in the file");
        let _ = fs::remove_dir_all(dir);
    }
}
