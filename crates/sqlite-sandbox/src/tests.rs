//! The sandbox against real SQLite: what a component may and may not do.

#![allow(clippy::unwrap_used)]

use std::ffi::{CStr, CString};
use std::ptr::{self, NonNull};
use std::time::{Duration, Instant};

use libsqlite3_sys as ffi;

use super::*;

struct Db(NonNull<ffi::sqlite3>);

impl Db {
    fn open(path: &str) -> Self {
        let path = CString::new(path).unwrap();
        let mut db = ptr::null_mut();
        let flags = ffi::SQLITE_OPEN_READWRITE | ffi::SQLITE_OPEN_CREATE;
        // SAFETY: test code opening a fresh connection.
        assert_eq!(unsafe { ffi::sqlite3_open_v2(path.as_ptr(), &mut db, flags, ptr::null()) }, ffi::SQLITE_OK);
        let db = Self(NonNull::new(db).unwrap());
        install(db.0, &Limits::for_query_bytes(1 << 20)).unwrap();
        db
    }

    fn memory() -> Self {
        Self::open(":memory:")
    }

    /// Runs `sql` as the host would run a checked statement.
    fn exec(&self, sql: &str) -> Result<(), String> {
        let sql = CString::new(sql).unwrap();
        let mut error = ptr::null_mut();
        // SAFETY: test code; the error message is freed below.
        let rc = unsafe { ffi::sqlite3_exec(self.0.as_ptr(), sql.as_ptr(), None, ptr::null_mut(), &mut error) };
        if rc == ffi::SQLITE_OK {
            return Ok(());
        }
        // SAFETY: SQLite's message, freed with sqlite3_free.
        let message = unsafe { CStr::from_ptr(error) }.to_string_lossy().into_owned();
        unsafe { ffi::sqlite3_free(error.cast()) };
        Err(message)
    }

    /// A component's statement: checked, then run.
    fn run(&self, sql: &str) -> Result<(), String> {
        check_statement(self.0, sql).map_err(|e| e.to_string())?;
        self.exec(sql)
    }
}

impl Drop for Db {
    fn drop(&mut self) {
        // SAFETY: closing the test's own connection.
        unsafe { ffi::sqlite3_close(self.0.as_ptr()) };
    }
}

#[test]
fn ordinary_ddl_and_dml_on_the_own_database_pass() {
    let db = Db::memory();
    for sql in [
        "CREATE TABLE t (id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT UNIQUE, doc TEXT)",
        "CREATE INDEX t_doc ON t (doc)",
        "INSERT INTO t (name, doc) VALUES ('a', '{\"n\": 1}') RETURNING id",
        "UPDATE t SET name = upper(name) WHERE json_extract(doc, '$.n') = 1",
        "SELECT name, doc ->> '$.n', count(*) OVER () FROM t WHERE name LIKE 'A%' ORDER BY id LIMIT 5",
        "SELECT value FROM json_each('[1,2,3]')",
        "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 100) SELECT sum(x) FROM c",
        "ALTER TABLE t ADD COLUMN extra INTEGER",
        "ALTER TABLE t RENAME COLUMN extra TO more",
        "ALTER TABLE t RENAME TO t2",
        "CREATE VIEW v AS SELECT name FROM t2",
        "CREATE TRIGGER tr AFTER INSERT ON t2 BEGIN UPDATE t2 SET more = 1 WHERE id = new.id; END",
        "INSERT INTO t2 (name) VALUES ('b')",
        "SELECT name, strftime('%Y', 'now'), unixepoch() FROM v",
        "SELECT name FROM sqlite_schema",
        "DELETE FROM t2",
        "DROP VIEW v",
        "DROP TABLE t2",
        "  SELECT 1; -- a trailing comment",
        "SELECT 1 /* a block */ ; /* and another */ ",
    ] {
        db.run(sql).unwrap_or_else(|e| panic!("{sql}: {e}"));
    }
}

#[test]
fn other_databases_files_pragmas_and_extensions_are_refused() {
    let dir = std::env::temp_dir().join(format!("wharf-sandbox-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let outside = dir.join("stolen.sqlite");
    let outside = outside.display();
    let db = Db::open(&dir.join("own.sqlite").display().to_string());
    db.run("CREATE TABLE t (x)").unwrap();
    for sql in [
        format!("ATTACH DATABASE '{outside}' AS o"),
        format!("attach   \"{outside}\" as [o]"),
        format!("ATTACH 'file:{outside}?mode=rwc' AS o"),
        "DETACH DATABASE main".into(),
        "PRAGMA journal_mode = DELETE".into(),
        "pragma main.writable_schema = 1".into(),
        "PrAgMa database_list".into(),
        "SELECT * FROM pragma_database_list".into(),
        "SELECT file FROM main.pragma_database_list".into(),
        "SELECT count(*) FROM pragma_table_info('t')".into(),
        "SELECT * FROM PRAGMA_compile_options".into(),
        "VACUUM".into(),
        format!("VACUUM INTO '{outside}'"),
        format!("VACUUM main INTO '{outside}'"),
        "SELECT load_extension('/tmp/evil.so')".into(),
        "SELECT sqlite_compileoption_used('x')".into(),
        "CREATE TEMP TABLE s (x)".into(),
        "CREATE TEMPORARY VIEW s AS SELECT 1".into(),
        "SELECT * FROM temp.items".into(),
        "CREATE VIRTUAL TABLE f USING fts5(x)".into(),
        "SELECT * FROM dbstat".into(),
        "SELECT * FROM sqlite_dbpage".into(),
        "SELECT instr(x, 'a') FROM t".into(),
        "SELECT replace('aaa', 'a', 'b')".into(),
        "SELECT trim('xx', 'x')".into(),
        "BEGIN".into(),
        "begin immediate transaction".into(),
        "COMMIT".into(),
        "END".into(),
        "SAVEPOINT s".into(),
        "RELEASE s".into(),
        "ROLLBACK".into(),
    ] {
        assert!(db.run(&sql).is_err(), "{sql} was allowed");
    }
    assert!(!dir.join("stolen.sqlite").exists(), "a file was written outside the component's database");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn the_hosts_tables_cannot_be_hooked_and_defaults_reach_no_forbidden_function() {
    let db = Db::memory();
    // As the host makes it (not inspected).
    db.exec("CREATE TABLE IF NOT EXISTS _sqlx_migrations (version INTEGER)").unwrap();
    db.exec("CREATE TABLE _wharf_jobs (x)").unwrap();
    assert!(db.run("CREATE TABLE _wharf_more (x)").is_err(), "a component named a table like the host's");
    for sql in [
        "CREATE TRIGGER t AFTER UPDATE ON _sqlx_migrations BEGIN SELECT 1; END",
        "DROP TABLE _sqlx_migrations",
        "CREATE VIEW _wharf_jobs AS SELECT 1",
        "ALTER TABLE _sqlx_migrations ADD COLUMN y",
        "CREATE INDEX i ON _sqlx_migrations (version)",
        "SELECT json_patch('{}', '{}')",
    ] {
        assert!(db.run(sql).is_err(), "{sql} was allowed");
    }
    // A DEFAULT expression is compiled without the authorizer; the shadowed
    // built-in is refused anyway (when the table is made, or when it is used).
    if db.run("CREATE TABLE d (id INTEGER PRIMARY KEY, x DEFAULT (instr('ab', 'b')))").is_ok() {
        let err = db.run("INSERT INTO d (id) VALUES (1)").unwrap_err();
        assert!(err.contains("instr") || err.contains("not allowed"), "{err}");
    }
}

#[test]
fn the_host_may_still_control_transactions() {
    let db = Db::memory();
    db.exec("BEGIN IMMEDIATE; CREATE TABLE t (x); SAVEPOINT a; RELEASE a; COMMIT").unwrap();
    assert!(is_autocommit(db.0));
}

#[test]
fn one_statement_per_call_as_sqlite_parses_it() {
    let db = Db::memory();
    db.run("CREATE TABLE t (x TEXT)").unwrap();
    for (sql, refusal) in [
        ("", Refusal::Empty),
        ("  -- only a comment", Refusal::Empty),
        ("/* only */ ;", Refusal::Empty),
        ("SELECT 1; SELECT 2", Refusal::Several),
        ("SELECT 1;\nDROP TABLE t", Refusal::Several),
        ("SELECT 1 -- \n; DELETE FROM t", Refusal::Several),
        ("SELECT 'a;' ; SELECT \"b\"", Refusal::Several),
        ("SELECT 1; garbage", Refusal::Several),
        ("SELECT 1;\0 ATTACH 'x' AS y", Refusal::Nul),
        ("SELECT '\0'", Refusal::Nul),
    ] {
        let got = check_statement(db.0, sql);
        match (&got, &refusal) {
            (Err(Refusal::Invalid(_)), Refusal::Invalid(_)) => {}
            _ => assert_eq!(got, Err(refusal), "{sql:?}"),
        }
    }
    // Quotes and comments that hide a semicolon are one statement.
    for sql in [
        "INSERT INTO t VALUES ('a;b')",
        "INSERT INTO t VALUES ('it''s; fine') -- ; DROP TABLE t",
        "SELECT x AS \"odd;name\" FROM t /* ; */",
        "SELECT [x;] FROM (SELECT 1 AS [x;])",
        "SELECT `x;` FROM (SELECT 1 AS `x;`)",
        "SELECT x'00ff'",
        "SELECT '\u{1}\u{7f}\u{1b}[0m'",
        // SQLite accepts a comment left open at the end.
        "SELECT 1 /* unterminated",
    ] {
        db.run(sql).unwrap_or_else(|e| panic!("{sql}: {e}"));
    }
}

#[test]
fn values_over_the_cap_are_refused_before_they_exist() {
    let db = Db::memory();
    assert!(db.run("SELECT randomblob(1048576)").is_ok());
    for sql in [
        "SELECT randomblob(1048577)",
        "SELECT zeroblob(1000000000)",
        "WITH RECURSIVE c(s) AS (SELECT 'x' UNION ALL SELECT s || s FROM c) SELECT length(s) FROM c",
    ] {
        let err = db.run(sql).expect_err(sql);
        assert!(err.contains("too big"), "{sql}: {err}");
    }
    // printf stops growing at the cap (its result is cut, not an error).
    db.run("SELECT printf('%.*c', 1000000000, 'x')").unwrap();
    let long_sql = format!("SELECT '{}'", "x".repeat(2 << 20));
    assert!(db.run(&long_sql).is_err());
}

#[test]
fn a_runaway_statement_stops_at_its_deadline() {
    let db = Db::memory();
    set_deadline(db.0, Some(Instant::now() + Duration::from_millis(200))).unwrap();
    let started = Instant::now();
    let err =
        db.run("WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM c").unwrap_err();
    assert!(err.contains("interrupt"), "{err}");
    assert!(started.elapsed() < Duration::from_secs(5), "{:?}", started.elapsed());
    assert!(deadline_passed(db.0));
    set_deadline(db.0, None).unwrap();
    assert!(!deadline_passed(db.0));
    db.run("SELECT 1").unwrap();
}

#[test]
fn denials_say_why() {
    let db = Db::memory();
    let err = check_statement(db.0, "SELECT load_extension('x')").unwrap_err();
    assert!(err.to_string().contains("load_extension"), "{err}");
    let err = check_statement(db.0, "BEGIN").unwrap_err();
    assert!(err.to_string().contains("store.begin"), "{err}");
}

#[test]
fn waiting_for_another_connections_lock_ends_at_the_deadline() {
    let path = std::env::temp_dir().join(format!("wharf-busy-{}.db", std::process::id()));
    let _ = std::fs::remove_file(&path);
    let limits = Limits::for_query_bytes(1 << 20);
    let budget = Budget { rows: 10, bytes: 1 << 10 };
    let mut holder = Connection::open(&path, &limits).unwrap();
    let mut waiter = Connection::open(&path, &limits).unwrap();
    holder.run("CREATE TABLE t (x INTEGER)", &[], budget, false, None).unwrap();
    holder.begin(None).unwrap();
    holder.run("INSERT INTO t VALUES (1)", &[], budget, false, None).unwrap();

    // A write and a BEGIN IMMEDIATE both wait for the lock, and give up at
    // the deadline (not after the 5 s busy limit).
    for attempt in ["insert", "begin"] {
        let started = Instant::now();
        let deadline = Some(started + Duration::from_millis(200));
        let result = match attempt {
            "insert" => waiter.run("INSERT INTO t VALUES (2)", &[], budget, false, deadline).map(|_| ()),
            _ => waiter.begin(deadline),
        };
        assert!(matches!(result, Err(RunError::DeadlinePassed)), "{attempt}: {result:?}");
        let waited = started.elapsed();
        assert!(waited >= Duration::from_millis(150) && waited < Duration::from_secs(2), "{attempt}: {waited:?}");
    }

    // Without a deadline the waiter gets the lock once the holder commits.
    let committer = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(300));
        holder.commit().unwrap();
    });
    waiter.run("INSERT INTO t VALUES (3)", &[], budget, false, None).unwrap();
    committer.join().unwrap();
    let rows = waiter.run("SELECT count(*) FROM t", &[], budget, true, None).unwrap();
    assert_eq!(rows.rows.len(), 1);
    drop(waiter);
    let _ = std::fs::remove_file(&path);
}

#[test]
fn a_write_whose_result_is_refused_changes_nothing() {
    let path = std::env::temp_dir().join(format!("wharf-returning-{}.db", std::process::id()));
    let _ = std::fs::remove_file(&path);
    let mut conn = Connection::open(&path, &Limits::for_query_bytes(1 << 20)).unwrap();
    let roomy = Budget { rows: 1000, bytes: 1 << 20 };
    conn.run("CREATE TABLE t (x INTEGER)", &[], roomy, false, None).unwrap();
    conn.run("INSERT INTO t SELECT value FROM json_each('[1,2,3,4,5]')", &[], roomy, false, None).unwrap();
    let tight = Budget { rows: 2, bytes: 1 << 20 };
    let count = |conn: &mut Connection, sql: &str| match conn.run(sql, &[], roomy, true, None).unwrap().rows[0][0] {
        Value::Integer(n) => n,
        ref other => panic!("{other:?}"),
    };
    // Outside a transaction, and inside one: the refused RETURNING leaves
    // every row as it was, and the transaction goes on.
    for in_transaction in [false, true] {
        if in_transaction {
            conn.begin(None).unwrap();
        }
        let refused = conn.run("UPDATE t SET x = x + 100 RETURNING x", &[], tight, true, None);
        assert!(matches!(refused, Err(RunError::TooLarge(_))), "{refused:?}");
        let refused = conn.run("DELETE FROM t RETURNING x", &[], tight, true, None);
        assert!(matches!(refused, Err(RunError::TooLarge(_))), "{refused:?}");
        assert_eq!(count(&mut conn, "SELECT count(*) FROM t WHERE x < 100"), 5, "in a transaction: {in_transaction}");
        if in_transaction {
            conn.run("INSERT INTO t VALUES (6)", &[], roomy, false, None).unwrap();
            conn.commit().unwrap();
        }
    }
    assert_eq!(count(&mut conn, "SELECT count(*) FROM t"), 6);
    drop(conn);
    let _ = std::fs::remove_file(&path);
}
