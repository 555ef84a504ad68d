//! The `wharf` command line.

use std::net::SocketAddr;
use std::path::PathBuf;

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
            Command::Serve { manifest, listen, data_dir, database_url } => {
                wharf::serve(wharf::ServeOptions { manifest, listen, data_dir, database_url }).await
            }
            Command::Migrate { manifest, data_dir, database_url } => {
                wharf::migrate(&manifest, &data_dir, database_url.as_deref()).await
            }
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
