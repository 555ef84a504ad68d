//! The `wharf` command line.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};

/// Wharf serves sandboxed WebAssembly components over HTTP.
#[derive(Debug, Parser)]
#[command(name = "wharf", version)]
struct Cli {
    /// Log format.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text, env = "WHARF_LOG_FORMAT")]
    log_format: LogFormat,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Load the manifest's components and serve them.
    Serve {
        /// The manifest.
        #[arg(long, default_value = "components.toml", env = "WHARF_MANIFEST")]
        manifest: PathBuf,
        /// Address for HTTP (port 0 picks one; see DATA_DIR/http.addr).
        #[arg(long, default_value = "127.0.0.1:8080", env = "WHARF_LISTEN")]
        listen: SocketAddr,
        /// Where the host keeps its state.
        #[arg(long, default_value = "./data", env = "WHARF_DATA_DIR")]
        data_dir: PathBuf,
        /// PostgreSQL URL; SQLite files under the data dir when unset.
        #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
        database_url: Option<String>,
        /// Address for the operator API [default: 127.0.0.1:9090, or a free
        /// port when taken; port 0 picks one; see DATA_DIR/admin.addr].
        #[arg(long, env = "WHARF_ADMIN_LISTEN")]
        admin_listen: Option<SocketAddr>,
        /// Bearer token the operator API requires (mandatory when it is not on loopback).
        #[arg(long, env = "WHARF_ADMIN_TOKEN", hide_env_values = true)]
        admin_token: Option<String>,
        /// Reload components when components.toml or their `.wasm` files change.
        #[arg(long)]
        watch: bool,
        #[command(flatten)]
        limits: LimitArgs,
    },
    /// List the components of a running host: version, load time, routes, grants.
    Components {
        #[command(flatten)]
        admin: AdminArgs,
    },
    /// Load a component of a running host anew and print the version now serving.
    Reload {
        /// The component.
        name: String,
        #[command(flatten)]
        admin: AdminArgs,
    },
    /// List the schedules of a running host (or of one component) with their last and next runs (UTC).
    Schedules {
        /// Only this component's.
        name: Option<String>,
        #[command(flatten)]
        admin: AdminArgs,
    },
    /// Apply every component's migrations, then exit.
    Migrate {
        /// The manifest.
        #[arg(long, default_value = "components.toml", env = "WHARF_MANIFEST")]
        manifest: PathBuf,
        /// Where the host keeps its state.
        #[arg(long, default_value = "./data", env = "WHARF_DATA_DIR")]
        data_dir: PathBuf,
        /// PostgreSQL URL; SQLite files under the data dir when unset.
        #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
        database_url: Option<String>,
    },
    /// Scaffold a component crate that builds and serves on the first try.
    New {
        /// The component's name (a-z, 0-9, `-`, `_`, starting with a letter).
        name: String,
        /// A Wharf repository (the crate goes to components/NAME and its entry to
        /// components.toml), or any directory (a project of its own in DIR/NAME).
        #[arg(long, default_value = ".")]
        dir: PathBuf,
    },
}

/// Timeouts and connection caps of `wharf serve` (docs/operators.md).
#[derive(Debug, clap::Args)]
struct LimitArgs {
    /// Time a client has to send a request's head.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration, env = "WHARF_HEADER_TIMEOUT")]
    header_timeout: Duration,
    /// A keep-alive connection without a request in flight closes after this.
    #[arg(long, default_value = "60s", value_parser = humantime::parse_duration, env = "WHARF_IDLE_TIMEOUT")]
    idle_timeout: Duration,
    /// Time a client has to send a request's body.
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration, env = "WHARF_BODY_TIMEOUT")]
    body_timeout: Duration,
    /// Largest request head, in bytes.
    #[arg(long, default_value_t = 32 * 1024, env = "WHARF_MAX_HEADER_BYTES")]
    max_header_bytes: usize,
    /// Most header fields in a request.
    #[arg(long, default_value_t = 100, env = "WHARF_MAX_HEADERS")]
    max_headers: usize,
    /// Open connections in total (kept below the open-file limit).
    #[arg(long, default_value_t = 10_000, env = "WHARF_MAX_CONNECTIONS")]
    max_connections: usize,
    /// Open connections (WebSockets included) from one client address.
    #[arg(long, default_value_t = 1024, env = "WHARF_MAX_CONNECTIONS_PER_IP")]
    max_connections_per_ip: usize,
}

impl LimitArgs {
    fn into_limits(self) -> wharf::server::front_door::ConnectionLimits {
        wharf::server::front_door::ConnectionLimits {
            header_read_timeout: self.header_timeout,
            idle_timeout: self.idle_timeout,
            body_read_timeout: self.body_timeout,
            max_header_bytes: self.max_header_bytes,
            max_headers: self.max_headers,
            max_connections: self.max_connections.max(1),
            max_connections_per_ip: self.max_connections_per_ip.max(1),
        }
    }
}

/// How the CLI finds a running host's operator API.
#[derive(Debug, clap::Args)]
struct AdminArgs {
    /// The running host's data dir (its operator API address is in DATA_DIR/admin.addr).
    #[arg(long, default_value = "./data", env = "WHARF_DATA_DIR")]
    data_dir: PathBuf,
    /// The operator API address, instead of reading it from the data dir.
    #[arg(long, env = "WHARF_ADMIN")]
    admin: Option<String>,
    /// Bearer token for the operator API.
    #[arg(long, env = "WHARF_ADMIN_TOKEN", hide_env_values = true)]
    admin_token: Option<String>,
}

impl AdminArgs {
    fn client(self) -> anyhow::Result<wharf::admin::client::AdminClient> {
        wharf::admin::client::AdminClient::find(&self.data_dir, self.admin.as_deref(), self.admin_token)
    }
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    init_tracing(cli.log_format);
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Serve { manifest, listen, data_dir, database_url, admin_listen, admin_token, watch, limits } => {
                let limits = limits.into_limits();
                let options = wharf::ServeOptions {
                    manifest,
                    listen,
                    data_dir,
                    database_url,
                    admin_listen,
                    admin_token,
                    watch,
                    limits,
                };
                wharf::serve(options).await
            }
            Command::Components { admin } => admin.client()?.print_components().await,
            Command::Reload { name, admin } => admin.client()?.reload(&name).await,
            Command::Schedules { name, admin } => admin.client()?.print_schedules(name.as_deref()).await,
            Command::Migrate { manifest, data_dir, database_url } => {
                wharf::migrate(&manifest, &data_dir, database_url.as_deref()).await
            }
            Command::New { name, dir } => wharf::scaffold::run(&name, &dir),
        }
    });
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn init_tracing(format: LogFormat) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_env("WHARF_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}
