//! The store against a real Redis server (Debian's `redis-server`, started per test on a free
//! port; skipped when it is not installed, unless `CI` or `MCPGATE_REQUIRE_REDIS` is set).

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use mcpgate_store::bus::To;
use mcpgate_store::sessions::{BackendSession, Created, Field, PoolLimits, SessionRecord};
use mcpgate_store::{ConnectOptions, RedisStore, StoreError};

struct Redis {
    child: Child,
    port: u16,
}

impl Redis {
    fn start() -> Option<Self> {
        Self::on_port(free_port())
    }

    fn on_port(port: u16) -> Option<Self> {
        let spawned = Command::new("redis-server")
            .args(["--bind", "127.0.0.1", "--port", &port.to_string(), "--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
        let child = match spawned {
            Ok(c) => c,
            Err(_) if std::env::var_os("CI").is_none() && std::env::var_os("MCPGATE_REQUIRE_REDIS").is_none() => {
                eprintln!("redis-server not installed: skipping");
                return None;
            }
            Err(e) => panic!("redis-server is required here: {e}"),
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "redis-server did not listen on {port}");
            std::thread::sleep(Duration::from_millis(20));
        }
        Some(Self { child, port })
    }

    fn options(&self) -> ConnectOptions {
        ConnectOptions {
            url: format!("redis://127.0.0.1:{}/0", self.port),
            username: None,
            password: None,
            key_prefix: "test:".into(),
            timeout: Duration::from_millis(500),
            ca_pem: None,
            client_cert_pem: None,
        }
    }

    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.stop();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("a free port")
}

fn record(principal: &str) -> SessionRecord {
    SessionRecord {
        principal: Some(principal.into()),
        protocol_version: "2025-11-25".into(),
        capabilities: r#"{"sampling":{}}"#.into(),
        client_info: r#"{"name":"t","version":"1"}"#.into(),
        created_ms: 1,
        ..Default::default()
    }
}

const LIMITS: PoolLimits = PoolLimits { max_total: 3, max_per_principal: 2, idle_ms: 60_000, evict_after_ms: 10_000 };

#[tokio::test]
async fn a_session_created_by_one_replica_is_loaded_by_another() {
    let Some(redis) = Redis::start() else { return };
    let a = RedisStore::connect(&redis.options()).await.expect("connect");
    let b = RedisStore::connect(&redis.options()).await.expect("connect");
    assert_eq!(a.create_session("s1", &record("alice"), Some("pa"), &LIMITS, 1_000).await, Ok(Created::Stored { evicted: None }));
    let loaded = b.load_session("s1", LIMITS.idle_ms, 2_000).await.expect("load").expect("exists");
    assert_eq!(loaded.principal.as_deref(), Some("alice"));
    assert_eq!(loaded.capabilities, r#"{"sampling":{}}"#);
    assert_eq!(b.load_session("nope", LIMITS.idle_ms, 2_000).await, Ok(None));
    // Idle past the timeout: gone for everyone, even before the sweeper ran.
    assert_eq!(b.load_session("s1", LIMITS.idle_ms, 1_000 + LIMITS.idle_ms + 1).await, Ok(None));
    assert!(!b.touch_session("s1", LIMITS.idle_ms, 1_000 + LIMITS.idle_ms + 1).await.expect("touch"));
}

#[tokio::test]
async fn pins_are_replaced_only_by_whoever_read_the_current_version() {
    let Some(redis) = Redis::start() else { return };
    let a = RedisStore::connect(&redis.options()).await.expect("connect");
    let b = RedisStore::connect(&redis.options()).await.expect("connect");
    assert_eq!(a.load_pins().await, Ok((None, 0)));
    assert_eq!(a.replace_pins(0, "one").await, Ok(true));
    // b read version 0 too: its write loses and it must read again.
    assert_eq!(b.replace_pins(0, "other").await, Ok(false));
    assert_eq!(b.load_pins().await, Ok((Some("one".to_owned()), 1)));
    assert_eq!(b.replace_pins(1, "two").await, Ok(true));
    assert_eq!(a.load_pins().await, Ok((Some("two".to_owned()), 2)));
}

#[tokio::test]
async fn quotas_refuse_or_evict_the_longest_idle_session() {
    let Some(redis) = Redis::start() else { return };
    let s = RedisStore::connect(&redis.options()).await.expect("connect");
    let create = |id: &'static str, who: &'static str, now: u64| {
        let s = s.clone();
        async move { s.create_session(id, &record(who), Some(who), &LIMITS, now).await.expect("create") }
    };
    assert_eq!(create("a1", "alice", 1_000).await, Created::Stored { evicted: None });
    assert_eq!(create("a2", "alice", 2_000).await, Created::Stored { evicted: None });
    assert_eq!(create("a3", "alice", 3_000).await, Created::PrincipalQuota, "alice's sessions are too recent to make room");
    // a1 has been idle 10 s: it makes room for alice's next one.
    match create("a3", "alice", 11_000).await {
        Created::Stored { evicted: Some(e) } => assert_eq!((e.0.as_str(), e.1.principal.as_deref()), ("a1", Some("alice"))),
        other => panic!("expected a1 evicted, got {other:?}"),
    }
    assert_eq!(s.load_session("a1", LIMITS.idle_ms, 11_000).await, Ok(None));
    assert_eq!(create("b1", "bob", 11_500).await, Created::Stored { evicted: None });
    // The pool (3) is full and nobody is idle 10 s yet.
    assert_eq!(create("c1", "carol", 11_900).await, Created::Full);
    assert_eq!(s.session_count(LIMITS.idle_ms, 11_900).await, Ok(3));
}

#[tokio::test]
async fn backend_sessions_are_stored_once_and_replaced_only_by_whoever_saw_the_old_one() {
    let Some(redis) = Redis::start() else { return };
    let s = RedisStore::connect(&redis.options()).await.expect("connect");
    s.create_session("s1", &record("alice"), None, &LIMITS, 1_000).await.expect("create");
    let mine = BackendSession { session_id: "backend-A".into(), protocol_version: "2025-11-25".into() };
    let theirs = BackendSession { session_id: "backend-B".into(), protocol_version: "2025-11-25".into() };
    assert_eq!(s.put_backend_session("s1", "github", 7, &mine, None).await, Ok(Some(mine.clone())));
    // A replica that initialised concurrently loses: the first one stays in force.
    assert_eq!(s.put_backend_session("s1", "github", 7, &theirs, None).await, Ok(Some(mine.clone())));
    // After the backend lost backend-A, whoever saw backend-A fail replaces it.
    assert_eq!(s.put_backend_session("s1", "github", 7, &theirs, Some("backend-A")).await, Ok(Some(theirs.clone())));
    assert_eq!(s.put_backend_session("s1", "github", 7, &mine, Some("backend-A")).await, Ok(Some(theirs.clone())), "a stale replacement loses");
    assert_eq!(s.backend_session("s1", "github", 7).await, Ok(Some(theirs.clone())));
    assert_eq!(s.backend_session("s1", "github", 8).await, Ok(None), "another credential has its own");
    let rec = s.load_session("s1", LIMITS.idle_ms, 2_000).await.expect("load").expect("exists");
    assert_eq!(rec.backends.get(&("github".to_owned(), 7)), Some(&theirs));
    assert_eq!(s.put_backend_session("gone", "github", 7, &mine, None).await, Ok(None));
}

#[tokio::test]
async fn deleting_returns_the_record_once_and_fields_follow_the_session() {
    let Some(redis) = Redis::start() else { return };
    let s = RedisStore::connect(&redis.options()).await.expect("connect");
    s.create_session("s1", &record("alice"), Some("pa"), &LIMITS, 1_000).await.expect("create");
    assert_eq!(s.set_session_field("s1", &Field::LogLevel, Some("debug")).await, Ok(true));
    assert_eq!(s.set_session_field("s1", &Field::StreamHolder, Some("replica-a")).await, Ok(true));
    assert_eq!(s.clear_session_field_if("s1", &Field::StreamHolder, "replica-b").await, Ok(false));
    let deleted = s.delete_session("s1").await.expect("delete").expect("existed");
    assert_eq!((deleted.log_level.as_deref(), deleted.stream_holder.as_deref()), (Some("debug"), Some("replica-a")));
    assert_eq!(s.delete_session("s1").await, Ok(None));
    assert_eq!(s.set_session_field("s1", &Field::LogLevel, Some("info")).await, Ok(false), "no field on a deleted session");
    assert_eq!(s.session_count(LIMITS.idle_ms, 2_000).await, Ok(0));
}

#[tokio::test]
async fn expired_sessions_are_claimed_by_exactly_one_sweeper() {
    let Some(redis) = Redis::start() else { return };
    let a = RedisStore::connect(&redis.options()).await.expect("connect");
    let b = RedisStore::connect(&redis.options()).await.expect("connect");
    a.create_session("old", &record("alice"), Some("pa"), &LIMITS, 1_000).await.expect("create");
    a.create_session("new", &record("alice"), Some("pa"), &LIMITS, 50_000).await.expect("create");
    let now = 1_000 + LIMITS.idle_ms + 1;
    let (first, second) = tokio::join!(a.claim_expired(LIMITS.idle_ms, now, 100), b.claim_expired(LIMITS.idle_ms, now, 100));
    let mut claimed: Vec<String> = first.expect("a").into_iter().chain(second.expect("b")).map(|(id, _)| id).collect();
    claimed.sort();
    assert_eq!(claimed, vec!["old".to_owned()]);
    assert!(a.load_session("new", LIMITS.idle_ms, now).await.expect("load").is_some());
}

#[tokio::test]
async fn bus_messages_reach_their_replica_and_broadcasts_reach_all() {
    let Some(redis) = Redis::start() else { return };
    let s = RedisStore::connect(&redis.options()).await.expect("connect");
    let mut a = s.subscribe_bus("a").await.expect("subscribe a");
    let mut b = s.subscribe_bus("b").await.expect("subscribe b");
    s.publish(&To::Replica("b".into()), b"for b").await.expect("publish");
    s.publish(&To::All, b"for all").await.expect("publish");
    assert_eq!(&recv(&mut b).await[..], b"for b");
    assert_eq!(&recv(&mut b).await[..], b"for all");
    assert_eq!(&recv(&mut a).await[..], b"for all", "a gets only the broadcast");
}

async fn recv(inbox: &mut mcpgate_store::bus::Inbox) -> bytes::Bytes {
    tokio::time::timeout(Duration::from_secs(5), inbox.recv()).await.expect("a message in time").expect("open")
}

#[tokio::test]
async fn a_store_that_goes_away_fails_fast_and_is_used_again_when_it_is_back() {
    let Some(mut redis) = Redis::start() else { return };
    let s = RedisStore::connect(&redis.options()).await.expect("connect");
    s.create_session("s1", &record("alice"), None, &LIMITS, 1_000).await.expect("create");
    let port = redis.port;
    redis.stop();
    let started = Instant::now();
    let err = s.load_session("s1", LIMITS.idle_ms, 2_000).await.expect_err("the store is down");
    assert!(matches!(err, StoreError::Unavailable(_) | StoreError::Timeout(_)), "{err:?}");
    assert!(err.to_string().starts_with("session store"), "{err}");
    assert!(started.elapsed() < Duration::from_secs(5), "bounded by the timeout, not hanging");
    let _back = Redis::on_port(port).expect("restart");
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        match s.ping().await {
            Ok(()) => break,
            Err(_) if Instant::now() < deadline => tokio::time::sleep(Duration::from_millis(100)).await,
            Err(e) => panic!("the store did not come back: {e}"),
        }
    }
    // A fresh server: the old session is gone, and new ones work.
    assert_eq!(s.load_session("s1", LIMITS.idle_ms, 2_000).await, Ok(None));
    assert_eq!(s.create_session("s2", &record("bob"), None, &LIMITS, 3_000).await, Ok(Created::Stored { evicted: None }));
}

#[tokio::test]
async fn an_unreachable_store_is_a_clear_error_at_connect() {
    let port = free_port();
    let opts = ConnectOptions {
        url: format!("redis://:secretpw@127.0.0.1:{port}/0"),
        username: None,
        password: None,
        key_prefix: "t:".into(),
        timeout: Duration::from_millis(300),
        ca_pem: None,
        client_cert_pem: None,
    };
    let err = RedisStore::connect(&opts).await.err().expect("nothing listens there");
    assert!(err.to_string().starts_with("session store"), "{err}");
    assert!(!err.to_string().contains("secretpw"));
}
