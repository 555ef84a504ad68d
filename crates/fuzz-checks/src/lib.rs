//! What each fuzz target checks. The fuzzer (`fuzz/`, cargo-fuzz on
//! nightly) and the replay of its committed corpus and regressions
//! (`tests/replay.rs`, stable, in the README's test command) call the same
//! functions with the same bytes, so a crash found once stays fixed.
//!
//! Each function decodes its input with `arbitrary`, runs one entry point a
//! client or component controls, and panics only when an invariant breaks.

#![deny(missing_docs)]
// The SQL target drives SQLite's C API directly to check the connection.
#![allow(unsafe_code)]

use std::ptr::NonNull;
use std::sync::{LazyLock, Mutex};
use std::time::{Duration, Instant};

use arbitrary::{Arbitrary, Unstructured};
use libsqlite3_sys as ffi;
use wharf::manifest::Manifest;
use wharf::router::{RouteMatch, RouteTable};
use wharf::server::websocket::Handshake;
use wharf_sqlite_sandbox::{Budget, Limits, Value};

fn decode<'a, T: Arbitrary<'a>>(data: &'a [u8]) -> Option<T> {
    T::arbitrary_take_rest(Unstructured::new(data)).ok()
}

/// The manifest parser: any text loads or is refused with a reason, and what
/// loads builds a route table or is refused.
pub fn manifest(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let path = std::path::Path::new("/nonexistent/fuzz/components.toml");
    if let Ok(manifest) = Manifest::parse(path, text) {
        let _ = RouteTable::build(manifest.components.values(), &manifest.websockets);
    }
}

static TABLE: LazyLock<RouteTable> = LazyLock::new(|| {
    let text = r#"
        [components.a]
        wasm = "a.wasm"
        routes = [
            { path = "/" },
            { path = "/api/*" },
            { path = "/api/login/*", methods = ["POST"], rate_limit = { requests = 1, per = "1m" } },
        ]
        [components.b]
        wasm = "b.wasm"
        routes = [{ path = "/b/*", methods = ["GET", "HEAD"] }, { path = "/exact" }]
    "#;
    let parsed = Manifest::parse(std::path::Path::new("/fuzz/components.toml"), text);
    let manifest = parsed.unwrap_or_else(|e| panic!("the fixed manifest: {e}"));
    RouteTable::build(manifest.components.values(), &manifest.websockets)
        .unwrap_or_else(|e| panic!("the fixed routes: {}", e.message))
});

/// The router: any method and path route somewhere or nowhere, and a path
/// with doubled slashes routes exactly like the collapsed one (so a route's
/// rate limit cannot be stepped around).
pub fn router(data: &[u8]) {
    let Some((method, path)) = decode::<(&[u8], &str)>(data) else { return };
    let Ok(method) = http::Method::from_bytes(method) else { return };
    let routed = TABLE.route(&method, path);
    let mut collapsed = String::new();
    for c in path.chars() {
        if !(c == '/' && collapsed.ends_with('/')) {
            collapsed.push(c);
        }
    }
    let same = TABLE.route(&method, &collapsed);
    match (&routed, &same) {
        (
            RouteMatch::Component { component: a, rate_limit: la, .. },
            RouteMatch::Component { component: b, rate_limit: lb, .. },
        ) => assert!(a == b && la == lb, "{path:?} and {collapsed:?} route differently"),
        (RouteMatch::NotFound, RouteMatch::NotFound)
        | (RouteMatch::MethodNotAllowed { .. }, RouteMatch::MethodNotAllowed { .. }) => {}
        _ => panic!("{path:?} and {collapsed:?} route differently"),
    }
}

/// A sandboxed in-memory connection, as a component's pool has them.
struct Db(NonNull<ffi::sqlite3>);

// SAFETY: used only under the mutex below, one thread at a time.
unsafe impl Send for Db {}

static DB: Mutex<Option<Db>> = Mutex::new(None);

fn open() -> Db {
    let mut db = std::ptr::null_mut();
    let flags = ffi::SQLITE_OPEN_READWRITE | ffi::SQLITE_OPEN_CREATE | ffi::SQLITE_OPEN_MEMORY;
    // SAFETY: opening a fresh connection; the handle is kept for the process.
    let rc = unsafe { ffi::sqlite3_open_v2(c":memory:".as_ptr(), &mut db, flags, std::ptr::null()) };
    assert_eq!(rc, ffi::SQLITE_OK, "open an in-memory database");
    let db = NonNull::new(db).unwrap_or_else(|| panic!("SQLite gave no connection"));
    wharf_sqlite_sandbox::install(db, &Limits::for_query_bytes(1 << 16)).unwrap_or_else(|e| panic!("sandbox: {e}"));
    let setup = "CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT UNIQUE, note BLOB)";
    wharf_sqlite_sandbox::run(db, setup, &[], Budget { rows: 10, bytes: 1 << 16 }, false)
        .unwrap_or_else(|e| panic!("setup: {e}"));
    Db(db)
}

/// The SQL entry point: text and parameters a component sends go through
/// the host's guard and the SQLite sandbox (check, bind, step under a
/// deadline and a budget). Afterwards the connection is outside any
/// transaction and has no other database attached.
pub fn sql_entry(data: &[u8]) {
    let Some((sql, numbers)) = decode::<(&str, Vec<i64>)>(data) else { return };
    let _ = wharf::store::guard::check_statement(sql);
    let mut slot = DB.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let db = slot.get_or_insert_with(open).0;
    let params: Vec<Value> = numbers.into_iter().take(8).map(Value::Integer).collect();
    let deadline = Some(Instant::now() + Duration::from_millis(50));
    wharf_sqlite_sandbox::set_deadline(db, deadline).unwrap_or_else(|e| panic!("{e}"));
    let _ = wharf_sqlite_sandbox::run(db, sql, &params, Budget { rows: 100, bytes: 1 << 16 }, true);
    wharf_sqlite_sandbox::set_deadline(db, None).unwrap_or_else(|e| panic!("{e}"));
    assert!(wharf_sqlite_sandbox::is_autocommit(db), "{sql:?} left a transaction open");
    // SAFETY: reads the name of database 2 (the first attached one), if any.
    let attached = unsafe { ffi::sqlite3_db_name(db.as_ptr(), 2) };
    assert!(attached.is_null(), "{sql:?} attached a database");
}

/// The WebSocket handshake and its query: any headers and query give a
/// handshake or none, and a handshake has a key and takes `after` from the query.
pub fn ws_handshake(data: &[u8]) {
    let Some((pairs, query)) = decode::<(Vec<(&str, &[u8])>, Option<&str>)>(data) else { return };
    let mut headers = http::HeaderMap::new();
    for (name, value) in pairs.into_iter().take(16) {
        let (Ok(name), Ok(value)) =
            (http::HeaderName::from_bytes(name.as_bytes()), http::HeaderValue::from_bytes(value))
        else {
            continue;
        };
        headers.append(name, value);
    }
    if let Some(handshake) = Handshake::read(&headers, query) {
        assert!(headers.contains_key(http::header::SEC_WEBSOCKET_KEY));
        if let Some(after) = handshake.after {
            assert!(query.is_some_and(|q| q.contains(&format!("after={after}"))));
        }
    }
}

/// A target's check.
pub type Check = fn(&[u8]);

/// Every target, by name, as the fuzzer and the replay know them.
pub const TARGETS: &[(&str, Check)] =
    &[("manifest", manifest), ("router", router), ("sql_entry", sql_entry), ("ws_handshake", ws_handshake)];
