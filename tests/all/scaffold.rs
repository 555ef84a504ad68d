//! `wharf new` (SPEC §6): the scaffolded crate builds and serves on the first
//! try, inside a repository or on its own; a taken or invalid name is refused
//! and nothing is written.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::support::{Wharf, error_code, repo_root};

/// Runs `wharf new ARGS…`: exit code, stdout, stderr.
fn wharf_new(args: &[&str]) -> (Option<i32>, String, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_wharf")).arg("new").args(args).output().expect("run wharf new");
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// The target dir the test binary was built in, so a scaffolded crate's
/// build reuses the dependencies already compiled there.
fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| repo_root().join("target"))
}

/// Every file under `dir` with its contents, to show that nothing changed.
fn snapshot(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut files = Vec::new();
    let mut pending = vec![dir.to_owned()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(dir).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                pending.push(path);
            } else {
                files.push((path.clone(), std::fs::read(&path).unwrap()));
            }
        }
    }
    files.sort();
    files
}

/// A Wharf repository as `wharf new` recognises one: a workspace taking
/// `components/*` beside a manifest.
fn fake_repo() -> tempfile::TempDir {
    let repo = tempfile::tempdir().unwrap();
    std::fs::write(
        repo.path().join("Cargo.toml"),
        "[workspace]\nresolver = \"2\"\nmembers = [\"components/*\"]\n\n[workspace.dependencies]\nwstd = \"0.6\"\n",
    )
    .unwrap();
    std::fs::write(
        repo.path().join("components.toml"),
        "# The fake repository's manifest.\n\n[components.hello]\nwasm = \"target/wasm32-wasip2/release/hello.wasm\"\n\
         routes = [{ path = \"/hello/*\", methods = [\"GET\"] }]\n",
    )
    .unwrap();
    repo
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn standalone_component_builds_and_serves_on_the_first_try() {
    let temp = tempfile::tempdir().unwrap();
    let (code, stdout, stderr) = wharf_new(&["demo-app", "--dir", temp.path().to_str().unwrap()]);
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    assert!(stdout.contains("cargo build --release --target wasm32-wasip2\n"), "{stdout}");
    assert!(stdout.contains(" serve\n") && stdout.contains(" reload demo-app\n"), "{stdout}");
    let project = temp.path().join("demo-app");
    let cargo_toml: toml::Table = std::fs::read_to_string(project.join("Cargo.toml")).unwrap().parse().unwrap();
    assert!(cargo_toml.contains_key("workspace"), "a project of its own: {cargo_toml}");
    let guest = cargo_toml["dependencies"]["wharf-guest"]["path"].as_str().unwrap();
    assert_eq!(Path::new(guest), repo_root().join("guest"));

    // The build a plugin author runs, warnings included. With the
    // repository's release profile (Cargo.toml) in the repository's target
    // dir, the dependencies its own component build compiled are reused.
    let target = target_dir();
    let build = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
        .args(["build", "--release", "--target", "wasm32-wasip2"])
        .current_dir(&project)
        .env("CARGO_TARGET_DIR", &target)
        .env("CARGO_PROFILE_RELEASE_DEBUG", "line-tables-only")
        .env("CARGO_PROFILE_RELEASE_INCREMENTAL", "true")
        .output()
        .expect("run cargo build");
    let build_log = String::from_utf8_lossy(&build.stderr);
    assert!(build.status.success(), "cargo build failed:\n{build_log}");
    assert!(!build_log.contains("warning"), "the scaffolded crate builds with warnings:\n{build_log}");

    // Serve it with the manifest `wharf new` wrote, its paths made absolute.
    let wasm = target.join("wasm32-wasip2/release/demo_app.wasm");
    let manifest = std::fs::read_to_string(project.join("components.toml"))
        .unwrap()
        .replace("\"target/wasm32-wasip2/release/demo_app.wasm\"", &format!("{:?}", wasm.display().to_string()))
        .replace("\"openapi.json\"", &format!("{:?}", project.join("openapi.json").display().to_string()));
    let wharf = Wharf::start(&manifest).await;
    let response = wharf.get("/demo-app/").await;
    assert_eq!(response.status(), 200);
    let component = response.headers()["x-wharf-component"].to_str().unwrap().to_owned();
    assert!(component.starts_with("demo-app@"), "{component}");
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body, serde_json::json!({"message": "Hello from demo-app!", "component": "demo-app"}));
    assert!(wharf.log().contains("greeting from demo-app"), "{}", wharf.log());

    // Its errors follow the house convention, and its OpenAPI fragment is served.
    let missing = wharf.get("/demo-app/nothing-here").await;
    assert_eq!(missing.status(), 404);
    assert_eq!(error_code(missing).await, "not_found");
    let (status, openapi) = wharf.get_json("/openapi.json").await;
    assert_eq!(status, 200);
    assert_eq!(openapi["paths"]["/demo-app/"]["get"]["operationId"], "demoAppGreet", "{openapi}");
}

#[test]
fn in_repository_component_is_added_to_the_workspace_and_manifest() {
    let repo = fake_repo();
    let dir = repo.path().to_str().unwrap();
    let manifest_before = std::fs::read_to_string(repo.path().join("components.toml")).unwrap();
    let (code, stdout, stderr) = wharf_new(&["shop", "--dir", dir]);
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    assert!(stdout.contains("cargo build --release --target wasm32-wasip2 -p shop\n"), "{stdout}");
    assert!(stdout.contains(" reload shop\n"), "{stdout}");

    // The crate, shaped like components/hello.
    let crate_dir = repo.path().join("components/shop");
    let cargo_toml: toml::Table = std::fs::read_to_string(crate_dir.join("Cargo.toml")).unwrap().parse().unwrap();
    assert_eq!(cargo_toml["package"]["name"].as_str(), Some("shop"));
    assert_eq!(cargo_toml["lib"]["crate-type"], toml::Value::Array(vec!["cdylib".into()]));
    assert_eq!(cargo_toml["dependencies"]["wstd"]["workspace"].as_bool(), Some(true));
    assert_eq!(cargo_toml["dependencies"]["wharf-guest"]["workspace"].as_bool(), Some(true));
    assert!(!cargo_toml.contains_key("workspace"), "a member of the repository's workspace");
    assert!(std::fs::read_to_string(crate_dir.join("src/lib.rs")).unwrap().contains("\"greeting\""));
    let openapi: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(crate_dir.join("openapi.json")).unwrap()).unwrap();
    assert!(openapi["paths"]["/shop/"].is_object(), "{openapi}");

    // The manifest gained the entry, after what it had, and the host accepts it.
    let manifest_path = repo.path().join("components.toml");
    let manifest_after = std::fs::read_to_string(&manifest_path).unwrap();
    assert!(manifest_after.starts_with(&manifest_before), "{manifest_after}");
    let manifest = wharf::manifest::Manifest::load(&manifest_path).unwrap();
    let shop = &manifest.components[&wharf::manifest::ComponentName::parse("shop").unwrap()];
    assert_eq!(shop.wasm, repo.path().join("target/wasm32-wasip2/release/shop.wasm"));
    assert_eq!(shop.source_crate.as_deref(), Some("components/shop"));
    assert_eq!(shop.config.get("greeting").map(String::as_str), Some("Hello"));
    assert_eq!(shop.openapi, Some(repo.path().join("components/shop/openapi.json")));
    let grants: Vec<_> = shop.grants.interfaces.iter().map(|i| i.name()).collect();
    assert_eq!(grants, ["config", "log"]);
    assert_eq!(manifest.components.len(), 2);

    // A second time: refused, and nothing changes.
    let before = snapshot(repo.path());
    let (code, stdout, stderr) = wharf_new(&["shop", "--dir", dir]);
    assert_eq!(code, Some(1), "{stdout}{stderr}");
    assert!(stderr.contains("already has a component `shop`"), "{stderr}");
    assert_eq!(snapshot(repo.path()), before);
}

#[test]
fn existing_crate_directory_is_refused_without_writing() {
    let repo = fake_repo();
    std::fs::create_dir_all(repo.path().join("components/cart/src")).unwrap();
    std::fs::write(repo.path().join("components/cart/src/lib.rs"), "// someone's work\n").unwrap();
    let before = snapshot(repo.path());
    let (code, _, stderr) = wharf_new(&["cart", "--dir", repo.path().to_str().unwrap()]);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("components/cart` already exists"), "{stderr}");
    assert_eq!(snapshot(repo.path()), before);
}

#[test]
fn invalid_name_is_refused_with_the_naming_rule() {
    let temp = tempfile::tempdir().unwrap();
    let (code, _, stderr) = wharf_new(&["Bad_Name", "--dir", temp.path().to_str().unwrap()]);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("`Bad_Name` is not a valid component name"), "{stderr}");
    assert!(stderr.contains("1-64 characters of a-z, 0-9, `-` and `_`, starting with a letter"), "{stderr}");
    assert!(snapshot(temp.path()).is_empty());
}
