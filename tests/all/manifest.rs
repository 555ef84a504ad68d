//! Loading refusals: the host does not start on a bad manifest or a
//! component that asks for more than it is granted, and says why.

use crate::support::Wharf;

#[tokio::test]
async fn refuses_component_with_ungranted_import() {
    // misbehave imports wharf:host/log; this manifest grants nothing.
    let failure = Wharf::try_start(
        r#"
        [components.misbehave]
        wasm = "{wasm:misbehave}"
        routes = [{ path = "/misbehave/*" }]
        "#,
    )
    .await
    .err()
    .expect("must refuse to start");
    assert_eq!(failure.code, Some(1));
    assert!(
        failure.stderr.contains(
            "component `misbehave` refused: imports `wharf:host/log@0.1.0` but its grants do not include \"log\""
        ),
        "{}",
        failure.stderr
    );
}

#[tokio::test]
async fn refuses_invalid_manifest_naming_component_and_field() {
    let failure = Wharf::try_start(
        r#"
        [components.hello]
        wasm = "{wasm:hello}"
        routes = [{ path = "/hello/*" }]
        limits = { deadline = "forever" }
        "#,
    )
    .await
    .err()
    .expect("must refuse to start");
    assert_eq!(failure.code, Some(1));
    assert!(failure.stderr.contains("component `hello`: field `limits.deadline`"), "{}", failure.stderr);
}

#[tokio::test]
async fn refuses_missing_wasm_file_naming_the_path() {
    let failure = Wharf::try_start(
        r#"
        [components.ghost]
        wasm = "does/not/exist.wasm"
        routes = [{ path = "/ghost/*" }]
        "#,
    )
    .await
    .err()
    .expect("must refuse to start");
    assert!(failure.stderr.contains("failed to read component `ghost`"), "{}", failure.stderr);
    assert!(failure.stderr.contains("does/not/exist.wasm"), "{}", failure.stderr);
}
