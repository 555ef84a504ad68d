//! Manifest validation: every file in `testdata/` is a bad manifest beside
//! the exact error (`.err`) it must produce; the error text is part of the
//! interface operators read, so it is pinned.

use std::path::Path;

use super::*;

#[test]
fn bad_manifests_produce_their_documented_errors() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/manifest/testdata");
    let mut checked = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "toml") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let expected = std::fs::read_to_string(path.with_extension("err")).unwrap();
        let err = Manifest::parse(Path::new("components.toml"), &text)
            .expect_err(&format!("{} must be refused", path.display()))
            .to_string();
        // The first line is pinned; TOML syntax errors go on with a snippet.
        assert_eq!(err.lines().next(), expected.lines().next(), "{}", path.display());
        checked += 1;
    }
    assert!(checked >= 9, "only {checked} bad manifests found");
}

#[test]
fn unknown_field_error_names_the_field() {
    let text =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("src/manifest/testdata/unknown_field.toml"))
            .unwrap();
    let err = Manifest::parse(Path::new("components.toml"), &text).unwrap_err().to_string();
    assert!(err.contains("unknown field `memory`"), "{err}");
}

#[test]
fn limits_inherit_defaults_and_override_per_component_and_route() {
    let m = Manifest::parse(
        Path::new("/srv/wharf/components.toml"),
        r#"
        [defaults.limits]
        deadline = "2s"
        max_body = "64KiB"

        [components.hello]
        wasm = "target/hello.wasm"
        routes = [{ path = "/hello/*" }, { path = "/upload", methods = ["POST"], max_body = "20MiB" }]
        limits = { memory = "32MiB", max_instances = 4 }
        config = { greeting = "hi" }
        grants = { interfaces = ["config"], outbound = ["http://127.0.0.1:9000"] }
        "#,
    )
    .unwrap();
    let hello = &m.components[&ComponentName::parse("hello").unwrap()];
    assert_eq!(hello.wasm, Path::new("/srv/wharf/target/hello.wasm"));
    assert_eq!(
        hello.limits,
        Limits {
            deadline: Duration::from_secs(2),
            memory: 32 << 20,
            max_instances: 4,
            max_body: 64 << 10,
            ..Limits::default()
        }
    );
    assert_eq!(hello.routes[0].max_body, 64 << 10);
    assert_eq!(hello.routes[1].max_body, 20 << 20);
    assert_eq!(hello.config.get("greeting").map(String::as_str), Some("hi"));
    assert!(hello.grants.interfaces.contains(&HostInterface::Config));
    assert_eq!(hello.grants.outbound[0].to_string(), "http://127.0.0.1:9000");
}

#[test]
fn schedules_are_parsed_in_order_with_their_payloads() {
    let m = Manifest::parse(
        Path::new("components.toml"),
        r#"
        [components.eye]
        wasm = "eye.wasm"
        routes = [{ path = "/eye/*" }]
        grants = { interfaces = ["queue"] }
        schedules = [
          { name = "digest", cron = "0 * * * *", payload = '{"kind":"digest"}' },
          { name = "fast", cron = "*/5 * * * * *" },
        ]
        "#,
    )
    .unwrap();
    let eye = &m.components[&ComponentName::parse("eye").unwrap()];
    let names: Vec<_> = eye.schedules.iter().map(|s| (s.name.as_str(), s.cron.as_str(), s.payload.as_str())).collect();
    assert_eq!(names, [("digest", "0 * * * *", r#"{"kind":"digest"}"#), ("fast", "*/5 * * * * *", "")]);
}

#[test]
fn a_schedule_payload_over_the_queue_cap_is_refused() {
    let payload = "x".repeat((1 << 20) + 1);
    let text = format!(
        "[components.eye]\nwasm = \"eye.wasm\"\nroutes = [{{ path = \"/eye/*\" }}]\ngrants = {{ interfaces = [\"queue\"] }}\n\
         schedules = [{{ name = \"big\", cron = \"0 * * * *\", payload = \"{payload}\" }}]\n"
    );
    let err = Manifest::parse(Path::new("components.toml"), &text).unwrap_err().to_string();
    assert_eq!(
        err,
        "components.toml: component `eye`: field `schedules[0].payload`: is 1048577 bytes; a job's payload is at most 1MiB"
    );
}

#[test]
fn reuse_is_opt_in_with_wasmtime_serves_defaults() {
    let m = Manifest::parse(
        Path::new("components.toml"),
        r#"
        [components.fresh]
        wasm = "a.wasm"
        routes = [{ path = "/a" }]

        [components.pure]
        wasm = "b.wasm"
        routes = [{ path = "/b" }]
        reuse = {}

        [components.tuned]
        wasm = "c.wasm"
        routes = [{ path = "/c" }]
        reuse = { max_requests = 10, max_concurrent = 2, idle = "250ms" }
        "#,
    )
    .unwrap();
    let reuse = |name: &str| m.components[&ComponentName::parse(name).unwrap()].reuse;
    assert_eq!(reuse("fresh"), None);
    assert_eq!(reuse("pure"), Some(ReuseSpec { max_requests: 128, max_concurrent: 16, idle: Duration::from_secs(1) }));
    assert_eq!(
        reuse("tuned"),
        Some(ReuseSpec { max_requests: 10, max_concurrent: 2, idle: Duration::from_millis(250) })
    );
}

#[test]
fn bad_reuse_settings_are_refused_naming_the_field() {
    for (setting, field) in [
        ("max_requests = 0", "reuse.max_requests"),
        ("max_concurrent = 0", "reuse.max_concurrent"),
        (r#"idle = "soon""#, "reuse.idle"),
        (r#"idle = "0s""#, "reuse.idle"),
        ("instances = 3", "instances"),
    ] {
        let text =
            format!("[components.a]\nwasm = \"a.wasm\"\nroutes = [{{ path = \"/a\" }}]\nreuse = {{ {setting} }}\n");
        let err = Manifest::parse(Path::new("components.toml"), &text).unwrap_err().to_string();
        assert!(err.contains(field), "{setting}: {err}");
    }
}
