//! `wharf:host/store` on both backends: values, typed errors, isolation
//! between components, request-scoped transactions, result caps, migrations.

use serde_json::json;

use crate::both_backends;
use crate::support::{Wharf, cli};

/// Two instances of the store test component: `storetest` and `other`.
pub(crate) fn storetest_manifest(extra: &str) -> String {
    format!(
        r#"
        [components.storetest]
        wasm = "{{wasm:storetest}}"
        routes = [{{ path = "/store/*" }}]
        grants = {{ interfaces = ["store", "queue", "log"] }}
        migrations = "{{repo}}/tests/components/storetest/migrations"
        {extra}

        [components.other]
        wasm = "{{wasm:storetest}}"
        routes = [{{ path = "/other/*" }}]
        grants = {{ interfaces = ["store", "queue"] }}
        migrations = "{{repo}}/tests/components/storetest/migrations"
        "#
    )
}

async fn query(wharf: &Wharf, sql: &str, params: serde_json::Value) -> (u16, serde_json::Value) {
    wharf.post_json("/store/query", json!({ "sql": sql, "params": params })).await
}

async fn execute(wharf: &Wharf, sql: &str, params: serde_json::Value) -> (u16, serde_json::Value) {
    wharf.post_json("/store/execute", json!({ "sql": sql, "params": params })).await
}

both_backends! {
    async fn values_round_trip_through_parameterised_sql(backend: Backend) {
        let wharf = Wharf::start_on(&storetest_manifest(""), backend).await;
        let (status, _) = execute(&wharf, "INSERT INTO items (name, note) VALUES ($1, $2)", json!(["plain", null])).await;
        assert_eq!(status, 200);
        // Placeholders out of order bind by number on both backends.
        let (status, _) = execute(&wharf, "INSERT INTO items (note, name) VALUES ($2, $1)", json!(["quoted'; DROP TABLE items; --", "x"])).await;
        assert_eq!(status, 200);
        let (status, rows) = query(
            &wharf,
            "SELECT name, note, CAST($1 AS BIGINT) AS i, CAST($2 AS DOUBLE PRECISION) AS r FROM items ORDER BY id",
            json!([9_007_199_254_740_993_i64, 2.5]),
        )
        .await;
        assert_eq!(status, 200, "{rows}");
        assert_eq!(
            rows["rows"],
            json!([
                ["plain", null, 9_007_199_254_740_993_i64, 2.5],
                ["quoted'; DROP TABLE items; --", "x", 9_007_199_254_740_993_i64, 2.5]
            ])
        );
        let (_, count) = query(&wharf, "SELECT COUNT(*) FROM items WHERE note IS NULL", json!([])).await;
        assert_eq!(count["rows"], json!([[1]]));
    }
}

both_backends! {
    async fn constraint_violations_are_a_distinct_error(backend: Backend) {
        let wharf = Wharf::start_on(&storetest_manifest(""), backend).await;
        assert_eq!(execute(&wharf, "INSERT INTO items (name) VALUES ($1)", json!(["dup"])).await.0, 200);
        let (status, body) = execute(&wharf, "INSERT INTO items (name) VALUES ($1)", json!(["dup"])).await;
        assert_eq!(status, 409);
        assert_eq!(body["error"]["kind"], "constraint_violation");
        let (status, body) = execute(&wharf, "INSERT INTO nowhere (x) VALUES ($1)", json!([1])).await;
        assert_eq!(status, 400);
        assert_eq!(body["error"]["kind"], "query_failed");
        // The host is fine after errors.
        assert_eq!(query(&wharf, "SELECT COUNT(*) FROM items", json!([])).await.1["rows"], json!([[1]]));
    }
}

both_backends! {
    async fn a_component_cannot_read_or_write_another_components_tables(backend: Backend) {
        let postgres = matches!(backend, Backend::Postgres(_));
        let wharf = Wharf::start_on(&storetest_manifest(""), backend).await;
        let (status, _) = wharf.post_json("/other/execute", json!({"sql": "INSERT INTO items (name) VALUES ('secret')", "params": []})).await;
        assert_eq!(status, 200);

        if postgres {
            for sql in ["SELECT * FROM other.items", "INSERT INTO other.items (name) VALUES ('x')", "SET ROLE postgres"] {
                let (status, body) = query(&wharf, sql, json!([])).await;
                assert_eq!(status, 403, "{sql}: {body}");
                assert_eq!(body["error"]["kind"], "access_denied", "{sql}");
            }
            let (_, body) = query(&wharf, "SELECT set_config('role', 'postgres', false)", json!([])).await;
            assert_eq!(body["error"]["kind"], "access_denied", "{body}");
        } else {
            let path = wharf.dir.join("data/db/other.sqlite").display().to_string();
            for sql in [format!("ATTACH DATABASE '{path}' AS o"), "SELECT 1; ATTACH 'x' AS y".into(), "PRAGMA writable_schema = 1".into()] {
                let (status, body) = query(&wharf, &sql, json!([])).await;
                assert_eq!(status, 403, "{sql}: {body}");
                assert_eq!(body["error"]["kind"], "access_denied");
            }
        }
        // The other component's row is untouched and invisible here.
        let (_, own) = query(&wharf, "SELECT COUNT(*) FROM items", json!([])).await;
        assert_eq!(own["rows"], json!([[0]]));
        let (_, theirs) = wharf.post_json("/other/query", json!({"sql": "SELECT name FROM items", "params": []})).await;
        assert_eq!(theirs["rows"], json!([["secret"]]));
    }
}

both_backends! {
    async fn an_open_transaction_rolls_back_when_the_request_traps_or_returns(backend: Backend) {
        let wharf = Wharf::start_on(&storetest_manifest(""), backend).await;
        let insert = |name: &str| json!({"sql": "INSERT INTO items (name) VALUES ($1)", "params": [name]});
        let (status, _) = wharf.post_json("/store/tx", json!({"steps": [insert("trapped")], "then": "trap"})).await;
        assert_eq!(status, 500);
        let (status, _) = wharf.post_json("/store/tx", json!({"steps": [insert("left-open")], "then": "return"})).await;
        assert_eq!(status, 200);
        let (status, _) = wharf.post_json("/store/tx", json!({"steps": [insert("rolled-back")], "then": "rollback"})).await;
        assert_eq!(status, 200);
        let (status, _) = wharf.post_json("/store/tx", json!({"steps": [insert("committed"), insert("too")], "then": "commit"})).await;
        assert_eq!(status, 200);
        let (_, rows) = query(&wharf, "SELECT name FROM items ORDER BY name", json!([])).await;
        assert_eq!(rows["rows"], json!([["committed"], ["too"]]));
    }
}

both_backends! {
    async fn oversized_results_are_refused_with_a_clear_error(backend: Backend) {
        let wharf = Wharf::start_on(&storetest_manifest("limits = { query_rows = 5 }"), backend).await;
        for i in 0..6 {
            execute(&wharf, "INSERT INTO items (name) VALUES ($1)", json!([format!("n{i}")])).await;
        }
        let (status, body) = query(&wharf, "SELECT name FROM items LIMIT 5", json!([])).await;
        assert_eq!(status, 200, "{body}");
        let (status, body) = query(&wharf, "SELECT name FROM items", json!([])).await;
        assert_eq!(status, 413);
        assert_eq!(body["error"]["kind"], "too_large");
        assert!(body["error"]["message"].as_str().unwrap().contains("more than 5 rows"));
    }
}

both_backends! {
    async fn an_edited_migration_refuses_the_load_naming_the_file(backend: Backend) {
        let temp = tempfile::tempdir().unwrap();
        let migrations = temp.path().join("migrations");
        std::fs::create_dir_all(&migrations).unwrap();
        std::fs::write(migrations.join("0001_things.sql"), "CREATE TABLE things (name TEXT NOT NULL);\n").unwrap();
        let manifest = format!(
            r#"
            [components.storetest]
            wasm = "{{wasm:storetest}}"
            routes = [{{ path = "/store/*" }}]
            grants = {{ interfaces = ["store", "queue"] }}
            migrations = "{}"
            "#,
            migrations.display()
        );
        let wharf = Wharf::start_on(&manifest, backend).await;
        assert_eq!(query(&wharf, "SELECT COUNT(*) FROM things", json!([])).await.0, 200);

        // A new migration is applied on restart...
        std::fs::write(migrations.join("0002_more.sql"), "ALTER TABLE things ADD COLUMN size INTEGER;\n").unwrap();
        let wharf = wharf.restart().await;
        assert_eq!(query(&wharf, "SELECT size FROM things", json!([])).await.0, 200);

        // ...an edited one refuses the load and names the file.
        std::fs::write(migrations.join("0001_things.sql"), "CREATE TABLE things (name TEXT);\n").unwrap();
        let failure = wharf.try_restart().await.err().expect("must refuse");
        assert!(failure.stderr.contains("0001_things.sql` was edited after it was applied"), "{}", failure.stderr);
    }
}

both_backends! {
    async fn wharf_migrate_applies_migrations_without_serving(backend: Backend) {
        let temp = tempfile::tempdir().unwrap();
        std::fs::write(temp.path().join("components.toml"), crate::support::manifest(&storetest_manifest(""))).unwrap();
        let (code, stdout, stderr) = cli(temp.path(), &backend, &["migrate"]);
        assert_eq!(code, Some(0), "{stderr}");
        assert!(stdout.contains("storetest: up to date"), "{stdout}");
        assert!(!temp.path().join("data/http.addr").exists(), "migrate must not serve");
        // Running it again is a no-op.
        assert_eq!(cli(temp.path(), &backend, &["migrate"]).0, Some(0));
    }
}
