//! The adversarial matrix: hostile SQL from a component, on both backends.
//! Every input must be refused or bounded; afterwards the host answers
//! within the deadline, no thread is left busy (the process's CPU time, not
//! wall time), the component's pool is healthy, and no other component's
//! data or file was touched. Each case prints a line for
//! docs/reliability.md.

use std::time::{Duration, Instant};

use serde_json::json;

use crate::both_backends;
use crate::store::storetest_manifest;
use crate::support::Wharf;

/// The component deadline the runaway cases run into.
const DEADLINE: &str = "2s";

/// What a case expects of the host.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Expect {
    /// Refused before anything ran: 403, or a 400 when the engine cannot compile it.
    Refused,
    /// Allowed to start, stopped by a bound (deadline, size): a non-2xx answer.
    Bounded,
}

async fn send(wharf: &Wharf, endpoint: &str, sql: &str) -> (u16, serde_json::Value, Duration) {
    let started = Instant::now();
    let response = wharf
        .client
        .post(wharf.url(endpoint))
        .json(&json!({ "sql": sql, "params": [] }))
        .timeout(Duration::from_secs(30))
        .send()
        .await
        .expect("the host answers every hostile statement");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or_default(), started.elapsed())
}

/// Runs `cases` through `/store/query` and `/store/execute`; returns how many held.
async fn run_matrix(wharf: &Wharf, backend: &str, cases: &[(&str, Expect, String)]) -> usize {
    let mut held = 0;
    for (name, expect, sql) in cases {
        for endpoint in ["/store/query", "/store/execute"] {
            eprintln!("[{backend}] {name} via {endpoint}");
            let (status, body, took) = send(wharf, endpoint, sql).await;
            let ok = match expect {
                Expect::Refused => matches!(status, 400 | 403),
                Expect::Bounded => !(200..300).contains(&status) && status != 0,
            };
            assert!(ok, "[{backend}] {name} via {endpoint} was not {expect:?}: {status} {body} ({sql:?})");
            assert!(took < Duration::from_secs(10), "[{backend}] {name} took {took:?}");
            held += 1;
        }
    }
    held
}

/// What every backend must refuse or bound.
fn common_cases(other_file: &str) -> Vec<(&'static str, Expect, String)> {
    use Expect::*;
    vec![
        ("two statements", Refused, "SELECT 1; DELETE FROM items".into()),
        ("statement after a line comment", Refused, "SELECT 1 -- c\n; DELETE FROM items".into()),
        ("statement after a block comment", Refused, "SELECT 1 /* ; */ ; DELETE FROM items".into()),
        ("nested block comment", Refused, "SELECT 1 /* a /* b */ c */; DELETE FROM items".into()),
        ("semicolon in a quoted name", Refused, "SELECT 1 AS \"a;\"; DELETE FROM items".into()),
        ("NUL then a statement", Refused, "SELECT 1;\0DELETE FROM items".into()),
        ("NUL inside a literal", Refused, "SELECT 'a\0b'".into()),
        ("control characters", Refused, "SELECT 1;\u{1}\u{7}\u{1b}[2J DELETE FROM items".into()),
        ("transaction control in SQL", Refused, "BEGIN".into()),
        ("commit in SQL", Refused, "COMMIT".into()),
        ("savepoint in SQL", Refused, "SAVEPOINT s".into()),
        ("another component's table", Refused, format!("SELECT * FROM {other_file}")),
        ("empty", Refused, "  -- nothing\n".into()),
    ]
}

both_backends! {
    async fn hostile_sql_is_refused_or_bounded_and_leaves_the_host_healthy(backend: Backend) {
        let is_pg = matches!(backend, Backend::Postgres(_));
        let limits = format!("limits = {{ deadline = \"{DEADLINE}\", query_bytes = \"1MiB\", db_connections = 4 }}");
        let wharf = Wharf::start_on(&storetest_manifest(&limits), backend).await;
        // Data the attacks must not touch: the other component's row.
        let (status, _) = wharf
            .post_json("/other/execute", json!({"sql": "INSERT INTO items (name) VALUES ($1)", "params": ["other's"]}))
            .await;
        assert_eq!(status, 200);
        let (status, _) = wharf
            .post_json("/store/execute", json!({"sql": "INSERT INTO items (name) VALUES ($1)", "params": ["mine"]}))
            .await;
        assert_eq!(status, 200);

        let db_dir = wharf.dir.join("data/db");
        let stolen = wharf.dir.join("stolen.sqlite");
        let stolen = stolen.display();
        let other = db_dir.join("other.sqlite");
        let other = other.display();
        let label = if is_pg { "postgres" } else { "sqlite" };
        let mut cases = common_cases("other.items");
        use Expect::*;
        if is_pg {
            cases.extend([
                ("set search_path to another schema", Bounded, "SELECT set_config('search_path', 'other', false), (SELECT count(*) FROM other.items)".to_owned()),
                ("SET ROLE", Refused, "SET ROLE postgres".to_owned()),
                ("read a server file", Refused, "SELECT pg_read_file('/etc/passwd')".to_owned()),
                ("COPY to a file", Refused, format!("COPY (SELECT 1) TO '{stolen}'")),
                ("create in public", Bounded, "CREATE TABLE public.planted (x int)".to_owned()),
                ("runaway sleep", Bounded, "SELECT pg_sleep(30)".to_owned()),
                ("runaway recursion", Bounded, "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM c".to_owned()),
                ("the host secret", Refused, "SELECT secret FROM public.wharf_host_secret".to_owned()),
                // Each would make the host hold 300 MB if it read the message whole.
                ("huge value", Bounded, "SELECT repeat('x', 300000000)".to_owned()),
                ("huge error message", Bounded, "DO $$ BEGIN RAISE EXCEPTION '%', repeat('x', 300000000); END $$".to_owned()),
                ("huge value, then an error", Bounded, "SELECT repeat('x', 300000000) UNION ALL SELECT (1 / 0)::text".to_owned()),
                ("huge notice", Bounded, "DO $$ BEGIN RAISE NOTICE '%', repeat('x', 300000000); RAISE EXCEPTION 'after'; END $$".to_owned()),
            ]);
        } else {
            cases.extend([
                ("ATTACH another component's file", Refused, format!("ATTACH DATABASE '{other}' AS o")),
                ("ATTACH with a URI", Refused, format!("ATTACH 'file:{stolen}?mode=rwc' AS o")),
                ("attach, odd spacing and case", Refused, format!("aTtAcH\n\t'{stolen}'\nAS [o]")),
                ("DETACH", Refused, "DETACH DATABASE main".to_owned()),
                ("PRAGMA", Refused, "PRAGMA writable_schema = 1".to_owned()),
                ("PRAGMA behind a comment", Refused, "/* x */ pragma journal_mode = DELETE".to_owned()),
                ("pragma table function (file paths)", Refused, "SELECT file FROM pragma_database_list".to_owned()),
                ("pragma function counted", Bounded, "SELECT count(*) FROM pragma_table_info('items')".to_owned()),
                ("VACUUM INTO a file", Bounded, format!("VACUUM INTO '{stolen}'")),
                ("VACUUM", Bounded, "VACUUM".to_owned()),
                ("load_extension", Refused, "SELECT load_extension('/tmp/x.so')".to_owned()),
                ("temporary table (session state)", Refused, "CREATE TEMP TABLE t (x)".to_owned()),
                ("a temp table", Refused, "SELECT * FROM temp.items".to_owned()),
                ("dbstat pages", Refused, "SELECT * FROM dbstat".to_owned()),
                ("fts virtual table", Refused, "CREATE VIRTUAL TABLE f USING fts5(x)".to_owned()),
                ("quadratic function", Refused, "SELECT instr(randomblob(100000), x'00')".to_owned()),
                ("huge value", Bounded, "SELECT randomblob(1000000000)".to_owned()),
                ("huge value by doubling", Bounded, "WITH RECURSIVE c(s) AS (SELECT 'x' UNION ALL SELECT s || s FROM c) SELECT length(s) FROM c".to_owned()),
                ("many large columns", Bounded, format!("SELECT {}", vec!["randomblob(1000000)"; 400].join(", "))),
                ("runaway recursion", Bounded, "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM c".to_owned()),
                ("runaway cross join", Bounded, "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c LIMIT 100000) SELECT count(*) FROM c a, c b".to_owned()),
            ]);
        }
        let started = Instant::now();
        let held = run_matrix(&wharf, label, &cases).await;

        // Nothing outside the component's own database was written or read.
        assert!(!wharf.dir.join("stolen.sqlite").exists(), "a file was written outside the database");
        let (status, body) = wharf.post_json("/other/query", json!({"sql": "SELECT name FROM items", "params": []})).await;
        assert_eq!((status, &body["rows"]), (200, &json!([["other's"]])), "{body}");
        let (status, body) = wharf.post_json("/store/query", json!({"sql": "SELECT name FROM items", "params": []})).await;
        assert_eq!((status, &body["rows"]), (200, &json!([["mine"]])), "{body}");

        // Memory stayed bounded. PostgreSQL: no message over the cap reached
        // the host, so its peak stays well under the 300 MB values asked for.
        // SQLite: its heap is capped at 512 MiB for the process, which the
        // 400 × 1 MB columns case fills most of.
        let peak = wharf.peak_rss();
        eprintln!("reliability: hostile-sql backend={label} peak_rss={}MiB", peak >> 20);
        let bound: u64 = if is_pg { 250 << 20 } else { (512 + 150) << 20 };
        assert!(peak < bound, "[{label}] the host's resident memory peaked at {} MiB", peak >> 20);

        // No thread is left busy: the process is idle once the answers are in.
        let busy = wharf.cpu_while_idle(Duration::from_millis(500), Duration::from_secs(2)).await;
        assert!(busy < 0.5, "[{label}] the host used {busy:.2}s of CPU in 2s after the matrix: something kept running");

        // The pool is healthy: a burst of ordinary statements all succeed, at
        // once, within the deadline.
        let burst = (0..16).map(|i| {
            let wharf = &wharf;
            async move {
                wharf.post_json("/store/query", json!({"sql": "SELECT $1 AS n", "params": [i]})).await
            }
        });
        let started_burst = Instant::now();
        for (status, body) in futures_util::future::join_all(burst).await {
            assert_eq!(status, 200, "{body}");
        }
        assert!(started_burst.elapsed() < Duration::from_secs(2), "{:?}", started_burst.elapsed());
        eprintln!(
            "reliability: hostile-sql backend={label} cases={} calls={held} held={held} leaked=0 took={:?}",
            cases.len(),
            started.elapsed()
        );
    }
}

both_backends! {
    async fn a_transaction_or_lock_left_open_does_not_outlive_its_request(backend: Backend) {
        let is_pg = matches!(backend, Backend::Postgres(_));
        let limits = "limits = { deadline = \"2s\", db_connections = 1 }";
        let wharf = Wharf::start_on(&storetest_manifest(limits), backend).await;
        // With one connection, any state left on it shows in the next request.
        let (status, body) = wharf
            .post_json("/store/tx", json!({"steps": [{"sql": "INSERT INTO items (name) VALUES ('left')", "params": []}], "then": "return"}))
            .await;
        assert_eq!(status, 200, "{body}");
        if is_pg {
            // Session state a component might plant: a held advisory lock and a setting.
            let (status, body) = wharf
                .post_json("/store/query", json!({"sql": "SELECT CAST(pg_advisory_lock(42) AS TEXT), set_config('application_name', 'planted', false)", "params": []}))
                .await;
            assert_eq!(status, 200, "{body}");
            let (status, body) = wharf
                .post_json("/store/query", json!({"sql": "SELECT current_setting('application_name') AS name, pg_try_advisory_lock(42) AS got", "params": []}))
                .await;
            assert_eq!(status, 200, "{body}");
            assert_ne!(body["rows"][0][0], "planted", "session settings survived into another request: {body}");
        }
        // The transaction left open was rolled back, and the connection is usable.
        let (status, body) = wharf
            .post_json("/store/query", json!({"sql": "SELECT count(*) FROM items WHERE name = 'left'", "params": []}))
            .await;
        assert_eq!((status, &body["rows"]), (200, &json!([[0]])), "{body}");
    }
}
