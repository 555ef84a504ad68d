//! The CLI side of the operator API: `wharf components`, `wharf reload` and `wharf schedules`
//! find the running host through `DATA_DIR/admin.addr` (or `--admin ADDR`)
//! and print what it answers.

use std::path::Path;

use anyhow::{Context, bail};
use serde_json::Value;

/// A connection to a running host's operator API.
pub struct AdminClient {
    base: String,
    token: Option<String>,
    http: reqwest::Client,
}

impl AdminClient {
    /// The host at `admin` (`HOST:PORT`), else the one whose data dir is `data_dir`.
    pub fn find(data_dir: &Path, admin: Option<&str>, token: Option<String>) -> anyhow::Result<Self> {
        let addr = match admin {
            Some(addr) => addr.to_owned(),
            None => {
                let file = data_dir.join(super::ADDR_FILE);
                std::fs::read_to_string(&file)
                    .with_context(|| {
                        format!("no running host found: cannot read `{}` (is `wharf serve` running with this --data-dir? or pass --admin ADDR)", file.display())
                    })?
                    .trim()
                    .to_owned()
            }
        };
        let http = reqwest::Client::builder().no_proxy().build().context("cannot build an HTTP client")?;
        Ok(Self { base: format!("http://{addr}"), token, http })
    }

    async fn call(&self, method: reqwest::Method, path: &str) -> anyhow::Result<Value> {
        let mut request = self.http.request(method, format!("{}{path}", self.base));
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        let response =
            request.send().await.with_context(|| format!("cannot reach the operator API at {}", self.base))?;
        let status = response.status();
        let body: Value = response.json().await.context("the operator API answered something that is not JSON")?;
        if !status.is_success() {
            let message = body["error"]["message"].as_str().unwrap_or("no message");
            bail!("{message} ({status})");
        }
        Ok(body)
    }

    /// `wharf components`: one block per component.
    pub async fn print_components(&self) -> anyhow::Result<()> {
        let body = self.call(reqwest::Method::GET, "/components").await?;
        for c in body["items"].as_array().into_iter().flatten() {
            println!(
                "{}@{}  loaded {}  ({})",
                text(&c["name"]),
                text(&c["version"]),
                text(&c["loaded_at"]),
                text(&c["wasm"])
            );
            for route in c["routes"].as_array().into_iter().flatten() {
                let methods = match route["methods"].as_array() {
                    Some(m) => m.iter().map(text).collect::<Vec<_>>().join(","),
                    None => "*".into(),
                };
                println!("    route  {} [{methods}]", text(&route["path"]));
            }
            let list = |v: &Value| v.as_array().into_iter().flatten().map(text).collect::<Vec<_>>().join(", ");
            println!("    grants {}", list(&c["grants"]["interfaces"]));
            if c["grants"]["outbound"].as_array().is_some_and(|o| !o.is_empty()) {
                println!("    outbound {}", list(&c["grants"]["outbound"]));
            }
        }
        Ok(())
    }

    /// `wharf reload NAME`: prints the version now serving.
    pub async fn reload(&self, name: &str) -> anyhow::Result<()> {
        let body = self.call(reqwest::Method::POST, &format!("/components/{name}/reload")).await?;
        let previous = body["previous"].as_str().map(|p| format!(" (was {p})")).unwrap_or_default();
        println!("{}@{}{previous} in {} ms", text(&body["name"]), text(&body["version"]), body["took"]);
        Ok(())
    }

    /// `wharf schedules [NAME]`: one line per schedule, with its last and next runs (UTC).
    pub async fn print_schedules(&self, component: Option<&str>) -> anyhow::Result<()> {
        let path = match component {
            Some(name) => format!("/components/{name}/schedules"),
            None => "/schedules".to_owned(),
        };
        let body = self.call(reqwest::Method::GET, &path).await?;
        for s in body["items"].as_array().into_iter().flatten() {
            let owner = s["component"].as_str().or(component).unwrap_or("?");
            let last = match (s["last_run"].as_i64(), s["last_job"].as_i64()) {
                (Some(at), Some(job)) => format!("{} (job {job})", utc(at)),
                (Some(at), None) => utc(at),
                _ => "never".into(),
            };
            let next = s["next_run"].as_i64().map_or_else(|| "never".into(), utc);
            println!("{owner}/{}  \"{}\"  last {last}  next {next}", text(&s["name"]), text(&s["cron"]));
        }
        Ok(())
    }
}

/// Unix ms as RFC 3339 UTC, to the second.
fn utc(ms: i64) -> String {
    chrono::DateTime::<chrono::Utc>::from_timestamp_millis(ms)
        .map_or_else(|| ms.to_string(), |t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
}

fn text(value: &Value) -> String {
    value.as_str().map(str::to_owned).unwrap_or_else(|| value.to_string())
}
