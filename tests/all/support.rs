//! Starting and stopping a real `wharf` for a test, and finding the compiled
//! test components.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long a host may take to compile its components and listen.
const START_TIMEOUT: Duration = Duration::from_secs(120);

/// The directory holding the compiled `.wasm` components.
pub fn wasm_dir() -> PathBuf {
    if let Ok(dir) = std::env::var("WHARF_WASM_DIR") {
        return PathBuf::from(dir);
    }
    let target = std::env::var("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"));
    target.join("wasm32-wasip2/release")
}

/// The compiled component `name`; fails with instructions when missing.
pub fn wasm(name: &str) -> PathBuf {
    let path = wasm_dir().join(format!("{name}.wasm"));
    assert!(
        path.exists(),
        "{} is missing: build the components first (`scripts/test.sh` does, or \
         `cargo build --release --target wasm32-wasip2 -p {name}`)",
        path.display()
    );
    path
}

/// Replaces `{wasm:NAME}` in a manifest template with the component's path
/// and `{repo}` with the repository root.
pub fn manifest(template: &str) -> String {
    let mut out = template.replace("{repo}", &repo_root().display().to_string());
    while let Some(start) = out.find("{wasm:") {
        let end = start + out[start..].find('}').expect("unclosed {wasm:");
        let name = &out[start + 6..end];
        let path = wasm(name).display().to_string();
        out.replace_range(start..=end, &path);
    }
    out
}

/// The repository root (where `components.toml` lives).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").canonicalize().expect("repo root")
}

/// Which database a host under test uses.
#[derive(Debug, Clone)]
pub enum Backend {
    /// SQLite files in the data dir.
    Sqlite,
    /// A fresh PostgreSQL database (URL) on the server the test command started.
    Postgres(String),
}

impl Backend {
    /// A new, empty PostgreSQL database on the test server, or `None` (with a
    /// loud message) when no server was provided. Under `CI=true` a missing
    /// server fails the test instead.
    pub async fn postgres() -> Option<Backend> {
        let Ok(admin_url) = std::env::var("WHARF_TEST_POSTGRES_URL") else {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "WHARF_TEST_POSTGRES_URL is not set: CI must run the PostgreSQL tests (use scripts/test.sh)"
            );
            eprintln!("!!! SKIPPING a PostgreSQL test: WHARF_TEST_POSTGRES_URL is not set (scripts/test.sh sets it)");
            return None;
        };
        let name = format!("wharf_t_{}", uuid::Uuid::new_v4().simple());
        let admin = sqlx::PgPool::connect(&admin_url).await.expect("connect to the test PostgreSQL");
        sqlx::raw_sql(&format!("CREATE DATABASE {name}")).execute(&admin).await.expect("create test database");
        admin.close().await;
        let base = admin_url.rsplit_once('/').map_or(admin_url.as_str(), |(base, _)| base);
        Some(Backend::Postgres(format!("{base}/{name}")))
    }

    fn database_url(&self) -> Option<&str> {
        match self {
            Self::Sqlite => None,
            Self::Postgres(url) => Some(url),
        }
    }
}

/// Declares one test per backend: `NAME::sqlite` and `NAME::postgres`.
#[macro_export]
macro_rules! both_backends {
    ($(#[$meta:meta])* async fn $name:ident($backend:ident: Backend) $body:block) => {
        $(#[$meta])*
        mod $name {
            #[allow(unused_imports)]
            use super::*;
            use $crate::support::Backend;

            async fn case($backend: Backend) $body

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                case(Backend::Sqlite).await
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                if let Some(backend) = Backend::postgres().await {
                    case(backend).await
                }
            }
        }
    };
}

/// Polls `check` until it returns `Some`, failing after `timeout`.
pub async fn eventually<T, F, Fut>(timeout: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let started = Instant::now();
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(started.elapsed() < timeout, "timed out after {timeout:?} waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A running host.
pub struct Wharf {
    child: Child,
    /// Where it serves HTTP.
    pub addr: SocketAddr,
    /// Its data dir (kept for restarts by [`Wharf::restart`]).
    pub dir: PathBuf,
    _temp: Option<tempfile::TempDir>,
    /// A client for it.
    pub client: reqwest::Client,
    /// Its database.
    pub backend: Backend,
    /// Extra `wharf serve` arguments it was started with.
    extra_args: Vec<String>,
}

/// A host that refused to start.
#[derive(Debug)]
pub struct StartFailure {
    /// Its exit code.
    pub code: Option<i32>,
    /// What it wrote to stderr.
    pub stderr: String,
}

impl Wharf {
    /// Starts a host with `manifest_toml` in a fresh temporary directory.
    pub async fn start(manifest_toml: &str) -> Wharf {
        Self::try_start(manifest_toml).await.unwrap_or_else(|f| panic!("wharf failed to start: {f:?}"))
    }

    /// Like [`Wharf::start`], but returns a start failure instead of panicking.
    pub async fn try_start(manifest_toml: &str) -> Result<Wharf, StartFailure> {
        Self::try_start_on(manifest_toml, Backend::Sqlite).await
    }

    /// Starts a host with `manifest_toml` on `backend`.
    pub async fn start_on(manifest_toml: &str, backend: Backend) -> Wharf {
        Self::try_start_on(manifest_toml, backend).await.unwrap_or_else(|f| panic!("wharf failed to start: {f:?}"))
    }

    /// Like [`Wharf::start_on`], but returns a start failure instead of panicking.
    pub async fn try_start_on(manifest_toml: &str, backend: Backend) -> Result<Wharf, StartFailure> {
        Self::try_start_with(manifest_toml, backend, &[]).await
    }

    /// Starts a host with `manifest_toml` on `backend`, passing `extra` to `wharf serve`.
    pub async fn try_start_with(manifest_toml: &str, backend: Backend, extra: &[&str]) -> Result<Wharf, StartFailure> {
        let temp = tempfile::tempdir().expect("temp dir");
        let dir = temp.path().to_owned();
        std::fs::write(dir.join("components.toml"), manifest(manifest_toml)).expect("write manifest");
        let extra = extra.iter().map(|a| a.to_string()).collect();
        let mut wharf = Self::launch(&dir, backend, extra).await?;
        wharf._temp = Some(temp);
        Ok(wharf)
    }

    /// Stops this host and starts a new one on the same directory (same
    /// manifest, same data dir, same compile cache).
    pub async fn restart(mut self) -> Wharf {
        let temp = self._temp.take();
        self.stop();
        let mut next = self.relaunch().await.unwrap_or_else(|f| panic!("restart failed: {f:?}"));
        next._temp = temp;
        next
    }

    /// Kills this host (SIGKILL, like `kill -9`) and tries to start a new one
    /// on the same directory and database.
    pub async fn try_restart(mut self) -> Result<Wharf, StartFailure> {
        let temp = self._temp.take();
        self.stop();
        let mut next = self.relaunch().await?;
        next._temp = temp;
        Ok(next)
    }

    async fn relaunch(&self) -> Result<Wharf, StartFailure> {
        Self::launch(&self.dir, self.backend.clone(), self.extra_args.clone()).await
    }

    async fn launch(dir: &Path, backend: Backend, extra_args: Vec<String>) -> Result<Wharf, StartFailure> {
        let data = dir.join("data");
        let _ = std::fs::remove_file(data.join("http.addr"));
        let log_path = dir.join("wharf.log");
        let stderr = std::fs::OpenOptions::new().create(true).append(true).open(&log_path).expect("log");
        let mut child = Command::new(env!("CARGO_BIN_EXE_wharf"))
            .arg("serve")
            .arg("--manifest")
            .arg(dir.join("components.toml"))
            .arg("--listen")
            .arg("127.0.0.1:0")
            .arg("--data-dir")
            .arg(&data)
            .arg("--admin-listen")
            .arg("127.0.0.1:0")
            .args(&extra_args)
            .env("WHARF_LOG", "info,wharf::queue=debug")
            .env_remove("DATABASE_URL")
            .envs(backend.database_url().map(|url| ("DATABASE_URL", url)))
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .expect("spawn wharf");
        let started = Instant::now();
        loop {
            let bound = std::fs::read_to_string(data.join("http.addr")).ok().and_then(|t| t.trim().parse().ok());
            if let Some(addr) = bound {
                let client = reqwest::Client::builder().no_proxy().build().expect("client");
                return Ok(Wharf { child, addr, dir: dir.to_owned(), _temp: None, client, backend, extra_args });
            }
            if let Ok(Some(status)) = child.try_wait() {
                return Err(StartFailure {
                    code: status.code(),
                    stderr: std::fs::read_to_string(&log_path).unwrap_or_default(),
                });
            }
            assert!(started.elapsed() < START_TIMEOUT, "wharf did not listen within {START_TIMEOUT:?}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// `http://ADDR{path}`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// `http://ADMIN_ADDR{path}`: the operator API (address from DATA_DIR/admin.addr).
    pub fn admin_url(&self, path: &str) -> String {
        let addr = std::fs::read_to_string(self.dir.join("data/admin.addr")).expect("admin.addr");
        format!("http://{}{path}", addr.trim())
    }

    /// GET `path`.
    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client.get(self.url(path)).send().await.expect("GET")
    }

    /// POSTs `body` as JSON to `path` and returns the status and JSON answer.
    pub async fn post_json(&self, path: &str, body: serde_json::Value) -> (u16, serde_json::Value) {
        let response = self.client.post(self.url(path)).json(&body).send().await.expect("POST");
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(serde_json::Value::Null))
    }

    /// GETs `path` and returns the status and JSON answer.
    pub async fn get_json(&self, path: &str) -> (u16, serde_json::Value) {
        let response = self.get(path).await;
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(serde_json::Value::Null))
    }

    /// Sends SIGTERM (graceful shutdown) and waits for the process to exit.
    pub fn terminate(&mut self) -> Option<i32> {
        let _ = Command::new("kill").arg("-TERM").arg(self.child.id().to_string()).status();
        self.child.wait().ok().and_then(|s| s.code())
    }

    /// CPU time (user + system) the host process has used, in seconds.
    pub fn cpu_seconds(&self) -> f64 {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.child.id())).expect("/proc/PID/stat");
        // Fields after the command name (which may hold spaces): utime and
        // stime are the 12th and 13th, in clock ticks (100 per second on Linux).
        let after_name = stat.rsplit_once(')').map_or(stat.as_str(), |(_, rest)| rest);
        let fields: Vec<&str> = after_name.split_whitespace().collect();
        let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
        ticks as f64 / 100.0
    }

    /// Waits `settle`, then returns the CPU seconds the host used over `window`:
    /// near zero when nothing is left running.
    pub async fn cpu_while_idle(&self, settle: Duration, window: Duration) -> f64 {
        tokio::time::sleep(settle).await;
        let before = self.cpu_seconds();
        tokio::time::sleep(window).await;
        self.cpu_seconds() - before
    }

    /// The most resident memory the host process has had (`VmHWM`), in bytes.
    pub fn peak_rss(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).expect("/proc/PID/status");
        let line = status.lines().find(|l| l.starts_with("VmHWM:")).expect("VmHWM in /proc/PID/status");
        let kib: u64 = line.split_whitespace().nth(1).and_then(|n| n.parse().ok()).expect("VmHWM in kB");
        kib * 1024
    }

    /// Everything the host logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("wharf.log")).unwrap_or_default()
    }

    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Wharf {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Runs the `wharf` CLI with `args` on the manifest and data dir in `dir`
/// (and `backend`'s database): exit code, stdout, stderr.
pub fn cli(dir: &Path, backend: &Backend, args: &[&str]) -> (Option<i32>, String, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_wharf"))
        .args(args)
        .arg("--manifest")
        .arg(dir.join("components.toml"))
        .arg("--data-dir")
        .arg(dir.join("data"))
        .env_remove("DATABASE_URL")
        .envs(backend.database_url().map(|url| ("DATABASE_URL", url)))
        .output()
        .expect("run wharf");
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// The JSON error body of SPEC §0, checked for shape; returns the code.
pub async fn error_code(response: reqwest::Response) -> String {
    let request_id = response
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .expect("x-request-id on every response");
    let content_type = response.headers().get("content-type").cloned();
    assert_eq!(content_type.as_ref().and_then(|v| v.to_str().ok()), Some("application/json"));
    let body: serde_json::Value = response.json().await.expect("JSON error body");
    let error = &body["error"];
    assert_eq!(error["request_id"], serde_json::Value::String(request_id), "{body}");
    assert!(error["message"].as_str().is_some_and(|m| !m.is_empty()), "{body}");
    error["code"].as_str().expect("error.code").to_owned()
}
