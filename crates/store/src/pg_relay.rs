//! A relay between the components' PostgreSQL pools and the server, so
//! that no message the server sends is bigger than the component's
//! `query_bytes` by the time the host reads it. sqlx reads each message whole
//! before the host sees a row, so without this one value of up to
//! PostgreSQL's 1 GB would be held in the host's memory before the result
//! cap refused it.
//!
//! The relay listens on a Unix socket in a directory only the host's user can
//! enter, and lets through only the component roles the host registered. It
//! reads the server's stream frame by frame (a type byte and a length, as the
//! protocol defines them; the server, not the component, writes these) and
//! copies each frame in bounded chunks. A frame over the role's cap is read
//! and thrown away as it arrives; in its place the client gets one
//! `ErrorResponse` with SQLSTATE `54000` (program limit exceeded), which sqlx
//! reports as the statement's error and the host as `too-large`, and the rest
//! of that statement's messages are dropped up to its `ReadyForQuery`, so the
//! connection stays usable. An oversized notice is dropped. What the client
//! sends passes unchanged.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use anyhow::Context;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader, BufWriter};
use tokio::net::{TcpStream, UnixListener, UnixStream};

/// The port number in the relay socket's name (`.s.PGSQL.PORT`, as libpq
/// and sqlx name a server's Unix socket); nothing listens on it over TCP.
pub(crate) const SOCKET_PORT: u16 = 5432;

/// Time a client has to send its startup message.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(10);

/// Room beyond the values' bytes that a row's framing takes (a length per
/// column, up to PostgreSQL's 1664 columns).
const FRAME_OVERHEAD: usize = 8 << 10;

/// The smallest cap: a queued job's payload (at most 1 MiB) always gets
/// through, whatever the component's `query_bytes`.
const MIN_CAP: usize = 1 << 20;

/// The message cap for a component whose results may hold `query_bytes`.
pub(crate) fn cap_for(query_bytes: u64) -> usize {
    usize::try_from(query_bytes).unwrap_or(usize::MAX).max(MIN_CAP).saturating_add(FRAME_OVERHEAD)
}

/// Protocol codes of the first messages a client may send.
const SSL_REQUEST: u32 = 80_877_103;
const GSSENC_REQUEST: u32 = 80_877_104;
const CANCEL_REQUEST: u32 = 80_877_102;

/// Where the server listens.
#[derive(Debug, Clone)]
pub(crate) enum Upstream {
    Tcp(String, u16),
    /// A Unix socket's path (`DIR/.s.PGSQL.PORT`).
    Unix(PathBuf),
}

/// The running relay: its socket's directory, and the cap of each role.
#[derive(Debug)]
pub struct PgRelay {
    dir: PathBuf,
    caps: Arc<RwLock<HashMap<String, usize>>>,
}

impl PgRelay {
    /// Listens on a Unix socket in `dir` (created, and readable by the host's
    /// user only, so no other local user can reach the server through it),
    /// and relays every connection to `upstream` for as long as the process
    /// runs. Only roles given a cap with [`PgRelay::set_cap`] get through.
    pub(crate) async fn start(dir: &Path, upstream: Upstream) -> anyhow::Result<Self> {
        use std::os::unix::fs::PermissionsExt;
        std::fs::create_dir_all(dir).with_context(|| format!("failed to create `{}`", dir.display()))?;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
        let path = dir.join(format!(".s.PGSQL.{SOCKET_PORT}"));
        let _ = std::fs::remove_file(&path);
        let listener = UnixListener::bind(&path)
            .with_context(|| format!("failed to bind the PostgreSQL relay at `{}`", path.display()))?;
        let caps = Arc::new(RwLock::new(HashMap::new()));
        let shared = caps.clone();
        tokio::spawn(async move {
            loop {
                let Ok((client, _)) = listener.accept().await else {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                };
                let (upstream, caps) = (upstream.clone(), shared.clone());
                tokio::spawn(async move {
                    if let Err(error) = relay(client, &upstream, &caps).await {
                        tracing::debug!(%error, "PostgreSQL relay connection ended");
                    }
                });
            }
        });
        Ok(Self { dir: dir.to_owned(), caps })
    }

    /// The directory of the socket the components' pools connect to.
    pub(crate) fn dir(&self) -> &Path {
        &self.dir
    }

    /// Lets `role` through, its messages capped at `max_bytes`.
    pub(crate) fn set_cap(&self, role: &str, max_bytes: usize) {
        if let Ok(mut caps) = self.caps.write() {
            caps.insert(role.to_owned(), max_bytes);
        }
    }
}

/// Relays one client connection; on any error both sockets just close.
async fn relay(
    mut client: UnixStream,
    upstream: &Upstream,
    caps: &RwLock<HashMap<String, usize>>,
) -> anyhow::Result<()> {
    let Some(startup) = tokio::time::timeout(STARTUP_TIMEOUT, startup(&mut client)).await?? else { return Ok(()) };
    let cap = caps.read().ok().and_then(|caps| caps.get(&startup.role).copied());
    let Some(cap) = cap else {
        client.write_all(&error_response("FATAL", "28000", "this role does not connect through the relay")).await?;
        return Ok(());
    };
    match upstream {
        Upstream::Tcp(host, port) => {
            let server = TcpStream::connect((host.as_str(), *port)).await?;
            let _ = server.set_nodelay(true);
            relay_to(client, server, &startup, cap).await
        }
        Upstream::Unix(path) => relay_to(client, UnixStream::connect(path).await?, &startup, cap).await,
    }
}

/// A client's startup message, as sent, and the role it names.
struct Startup {
    message: Vec<u8>,
    role: String,
}

/// Reads the client's first messages, which carry no type byte: a TLS or GSS
/// request (declined: the relay is a local socket), then the startup message.
/// A cancel request or anything else ends the connection (`None`): the host
/// never sends cancel requests through the relay.
async fn startup(client: &mut UnixStream) -> anyhow::Result<Option<Startup>> {
    loop {
        let len = usize::try_from(client.read_u32().await?)?;
        anyhow::ensure!((8..=10_000).contains(&len), "a startup message of {len} bytes");
        let mut body = vec![0; len - 4];
        client.read_exact(&mut body).await?;
        let code = u32::from_be_bytes([body[0], body[1], body[2], body[3]]);
        match code {
            SSL_REQUEST | GSSENC_REQUEST => client.write_all(b"N").await?,
            CANCEL_REQUEST => return Ok(None),
            _ => {
                let Some(role) = startup_user(&body[4..]) else { return Ok(None) };
                let mut message = u32::try_from(len)?.to_be_bytes().to_vec();
                message.extend_from_slice(&body);
                return Ok(Some(Startup { message, role }));
            }
        }
    }
}

async fn relay_to<S>(client: UnixStream, mut server: S, startup: &Startup, cap: usize) -> anyhow::Result<()>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    server.write_all(&startup.message).await?;
    let (server_read, mut server_write) = tokio::io::split(server);
    let (mut client_read, client_write) = client.into_split();
    let upstream = async {
        tokio::io::copy(&mut client_read, &mut server_write).await?;
        server_write.shutdown().await
    };
    let downstream = frames(BufReader::with_capacity(64 << 10, server_read), BufWriter::new(client_write), cap);
    // Either side ending ends the connection.
    tokio::select! {
        result = upstream => result?,
        result = downstream => result?,
    }
    Ok(())
}

/// The `user` parameter of a startup message's `key\0value\0…\0` list;
/// `None` if there is none or more than one (the server would take the last).
fn startup_user(params: &[u8]) -> Option<String> {
    let mut fields = params.split(|b| *b == 0);
    let mut user = None;
    while let (Some(key), Some(value)) = (fields.next(), fields.next()) {
        if key == b"user" {
            if user.is_some() {
                return None;
            }
            user = Some(String::from_utf8_lossy(value).into_owned());
        }
    }
    user
}

/// Copies the server's messages to the client, none bigger than `cap`.
async fn frames<R, W>(mut server: BufReader<R>, mut client: BufWriter<W>, cap: usize) -> std::io::Result<()>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut refused_this_query = false;
    loop {
        let mut header = [0u8; 5];
        match server.read_exact(&mut header).await {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return client.flush().await,
            Err(e) => return Err(e),
        }
        let kind = header[0];
        let len = u32::from_be_bytes([header[1], header[2], header[3], header[4]]);
        let body = u64::from(len.saturating_sub(4));
        if usize::try_from(body).map_or(true, |body| body > cap) {
            pass_on::<R, W>(&mut server, body, None).await?;
            if kind != b'N' && !refused_this_query {
                let message = format!("a row or message of the result is larger than {cap} bytes; select less");
                client.write_all(&error_response("ERROR", "54000", &message)).await?;
                refused_this_query = true;
            }
        } else if refused_this_query && kind != b'Z' {
            // The rest of a refused query (its other rows, or an error the
            // server still raises) would reach sqlx as the next statement's.
            pass_on::<R, W>(&mut server, body, None).await?;
        } else {
            client.write_all(&header).await?;
            pass_on(&mut server, body, Some(&mut client)).await?;
            if kind == b'Z' {
                refused_this_query = false;
            }
        }
        // Batch writes while the server's data is already here; flush
        // before waiting for more.
        if server.buffer().is_empty() {
            client.flush().await?;
        }
    }
}

/// Moves the next `len` bytes of `server` to `client` (or drops them),
/// chunk by chunk as they arrive, without flushing.
async fn pass_on<R, W>(
    server: &mut BufReader<R>,
    len: u64,
    mut client: Option<&mut BufWriter<W>>,
) -> std::io::Result<()>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut left = len;
    while left > 0 {
        let chunk = server.fill_buf().await?;
        if chunk.is_empty() {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        let n = chunk.len().min(usize::try_from(left).unwrap_or(usize::MAX));
        if let Some(client) = client.as_mut() {
            client.write_all(&chunk[..n]).await?;
        }
        server.consume(n);
        left -= n as u64;
    }
    Ok(())
}

/// An `ErrorResponse` of `severity` with SQLSTATE `code`.
fn error_response(severity: &str, code: &str, message: &str) -> Vec<u8> {
    let mut fields = Vec::new();
    for (kind, value) in [(b'S', severity), (b'V', severity), (b'C', code), (b'M', message)] {
        fields.push(kind);
        fields.extend_from_slice(value.as_bytes());
        fields.push(0);
    }
    fields.push(0);
    let mut frame = vec![b'E'];
    frame.extend_from_slice(&u32::try_from(fields.len() + 4).unwrap_or(u32::MAX).to_be_bytes());
    frame.extend_from_slice(&fields);
    frame
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A startup message for `user`.
    fn startup_message(user: &str) -> Vec<u8> {
        let mut body = 196_608u32.to_be_bytes().to_vec();
        for part in ["user", user, "database", "db"] {
            body.extend_from_slice(part.as_bytes());
            body.push(0);
        }
        body.push(0);
        let mut message = u32::try_from(body.len() + 4).unwrap_or(0).to_be_bytes().to_vec();
        message.extend_from_slice(&body);
        message
    }

    #[tokio::test]
    async fn only_registered_roles_reach_the_server() {
        let server = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = server.local_addr().expect("addr").port();
        let dir = std::env::temp_dir().join(format!("wharf-relay-test-{}", std::process::id()));
        let relay = PgRelay::start(&dir, Upstream::Tcp("127.0.0.1".into(), port)).await.expect("relay");
        relay.set_cap("wharf_a", 1 << 20);
        let socket = dir.join(format!(".s.PGSQL.{SOCKET_PORT}"));

        // An unregistered role gets a FATAL error and the server sees nothing.
        let mut client = UnixStream::connect(&socket).await.expect("connect");
        client.write_all(&startup_message("postgres")).await.expect("send");
        let mut answer = Vec::new();
        client.read_to_end(&mut answer).await.expect("read");
        assert_eq!(answer.first(), Some(&b'E'));
        assert!(answer.windows(6).any(|w| w == b"C28000"), "{answer:?}");
        let nothing = tokio::time::timeout(Duration::from_millis(200), server.accept()).await;
        assert!(nothing.is_err(), "the server was reached for an unregistered role");

        // A registered one is passed on, its startup message unchanged.
        let mut client = UnixStream::connect(&socket).await.expect("connect");
        client.write_all(&startup_message("wharf_a")).await.expect("send");
        let (mut upstream, _) =
            tokio::time::timeout(Duration::from_secs(5), server.accept()).await.expect("in time").expect("accept");
        let mut received = vec![0; startup_message("wharf_a").len()];
        upstream.read_exact(&mut received).await.expect("read");
        assert_eq!(received, startup_message("wharf_a"));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn startup_names_the_user() {
        assert_eq!(startup_user(b"user\0wharf_a\0database\0db\0\0").as_deref(), Some("wharf_a"));
        assert_eq!(startup_user(b"database\0db\0user\0b\0\0").as_deref(), Some("b"));
        assert_eq!(startup_user(b"database\0db\0\0"), None);
        assert_eq!(startup_user(b"user\0a\0user\0postgres\0\0"), None);
    }

    #[test]
    fn the_refusal_is_a_well_formed_error_response() {
        let frame = error_response("ERROR", "54000", "too large");
        assert_eq!(frame[0], b'E');
        let len = u32::from_be_bytes([frame[1], frame[2], frame[3], frame[4]]) as usize;
        assert_eq!(len + 1, frame.len());
        assert!(frame.windows(6).any(|w| w == b"C54000"));
        assert_eq!(frame.last(), Some(&0));
    }
}
