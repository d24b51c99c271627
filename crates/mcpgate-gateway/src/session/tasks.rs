//! The ids of tasks modern backends created, as clients see them: minted by the gateway,
//! mapped to the backend and its own id, bound to the caller's principal, expiring.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use mcpgate_protocol::names::ServerName;

/// How long a mapping is kept when the backend gives no `ttlMs` for its task.
const DEFAULT_TTL: Duration = Duration::from_secs(3600);
const MAX_TTL: Duration = Duration::from_secs(7 * 24 * 3600);

struct Route {
    server: ServerName,
    backend_task: String,
    principal: String,
    expires: Instant,
}

#[derive(Default)]
pub struct Tasks {
    routes: Mutex<HashMap<String, Route>>,
}

impl Tasks {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Route>> {
        self.routes.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records a backend's new task and returns the id the client sees.
    pub fn mint(&self, server: &ServerName, backend_task: &str, principal: &str, ttl_ms: Option<u64>) -> String {
        let bytes: [u8; 16] = rand::random();
        let id: String = std::iter::once("mcpgate-task-".to_owned()).chain(bytes.iter().map(|b| format!("{b:02x}"))).collect();
        let ttl = ttl_ms.map_or(DEFAULT_TTL, Duration::from_millis).min(MAX_TTL);
        let now = Instant::now();
        let mut routes = self.lock();
        routes.retain(|_, r| r.expires > now);
        routes.insert(id.clone(), Route { server: server.clone(), backend_task: backend_task.to_owned(), principal: principal.to_owned(), expires: now + ttl });
        id
    }

    pub fn find(&self, id: &str, principal: &str) -> Option<(ServerName, String)> {
        let routes = self.lock();
        let r = routes.get(id).filter(|r| r.principal == principal && r.expires > Instant::now())?;
        Some((r.server.clone(), r.backend_task.clone()))
    }

    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minted_ids_are_bound_to_their_caller_and_expire() {
        let t = Tasks::default();
        let s = ServerName::parse("jobs").expect("name");
        let id = t.mint(&s, "backend-1", "alice", None);
        assert!(id.starts_with("mcpgate-task-") && id.len() == "mcpgate-task-".len() + 32);
        assert_eq!(t.find(&id, "alice"), Some((s.clone(), "backend-1".to_owned())));
        assert_eq!(t.find(&id, "bob"), None);
        assert_eq!(t.find("backend-1", "alice"), None);
        let short = t.mint(&s, "backend-2", "alice", Some(0));
        std::thread::sleep(Duration::from_millis(2));
        assert_eq!(t.find(&short, "alice"), None);
    }
}
