//! A loopback relay between the components' PostgreSQL pools and the server,
//! so that no message the server sends is bigger than the component's
//! `query_bytes` by the time the host reads it. sqlx reads each message whole
//! before the host sees a row, so without this one value of up to
//! PostgreSQL's 1 GB would be held in the host's memory before the result
//! cap refused it.
//!
//! The relay reads the server's stream frame by frame (a type byte and a
//! length, as the protocol defines them; the server, not the component,
//! writes these) and copies each frame in bounded chunks. A frame over the
//! role's cap is read and thrown away as it arrives; in its place the client
//! gets one `ErrorResponse` with SQLSTATE `54000` (program limit exceeded) for
//! that query, which sqlx reports as the query's error and the host as
//! `too-large`. The connection stays usable: the rest of the query's messages
//! pass on and sqlx skips them up to the next `ReadyForQuery`. An oversized
//! notice is dropped. What the client sends passes unchanged.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};

use anyhow::Context;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader, BufWriter};
use tokio::net::{TcpListener, TcpStream, UnixStream};

/// The cap for a role the relay was not told about.
const DEFAULT_CAP: usize = 16 << 20;

/// Room beyond the values' bytes that a row's framing takes (a length per
/// column, up to PostgreSQL's 1664 columns).
pub(crate) const FRAME_OVERHEAD: usize = 8 << 10;

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

/// The running relay: its address, and the cap of each role.
#[derive(Debug)]
pub struct PgRelay {
    addr: SocketAddr,
    caps: Arc<RwLock<HashMap<String, usize>>>,
}

impl PgRelay {
    /// Listens on a loopback port and relays every connection to `upstream`
    /// for as long as the process runs.
    pub(crate) async fn start(upstream: Upstream) -> anyhow::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await.context("failed to bind the PostgreSQL relay")?;
        let addr = listener.local_addr()?;
        let caps = Arc::new(RwLock::new(HashMap::new()));
        let shared = caps.clone();
        tokio::spawn(async move {
            loop {
                let Ok((client, _)) = listener.accept().await else {
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
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
        Ok(Self { addr, caps })
    }

    /// Where the components' pools connect.
    pub(crate) fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Caps the messages `role`'s connections receive at `max_bytes`.
    pub(crate) fn set_cap(&self, role: &str, max_bytes: usize) {
        if let Ok(mut caps) = self.caps.write() {
            caps.insert(role.to_owned(), max_bytes);
        }
    }
}

/// Relays one client connection; on any error both sockets just close.
async fn relay(client: TcpStream, upstream: &Upstream, caps: &RwLock<HashMap<String, usize>>) -> anyhow::Result<()> {
    let _ = client.set_nodelay(true);
    match upstream {
        Upstream::Tcp(host, port) => {
            let server = TcpStream::connect((host.as_str(), *port)).await?;
            let _ = server.set_nodelay(true);
            relay_to(client, server, caps).await
        }
        Upstream::Unix(path) => relay_to(client, UnixStream::connect(path).await?, caps).await,
    }
}

async fn relay_to<S>(mut client: TcpStream, mut server: S, caps: &RwLock<HashMap<String, usize>>) -> anyhow::Result<()>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    // The client's first messages carry no type byte: a TLS or GSS request
    // (declined: the relay is plain TCP on loopback), a cancel request
    // (passed on as is), or the startup message, which names the role.
    let cap = loop {
        let len = usize::try_from(client.read_u32().await?)?;
        anyhow::ensure!((8..=10_000).contains(&len), "a startup message of {len} bytes");
        let mut body = vec![0; len - 4];
        client.read_exact(&mut body).await?;
        let code = u32::from_be_bytes([body[0], body[1], body[2], body[3]]);
        match code {
            SSL_REQUEST | GSSENC_REQUEST => client.write_all(b"N").await?,
            _ => {
                server.write_all(&u32::try_from(len)?.to_be_bytes()).await?;
                server.write_all(&body).await?;
                if code == CANCEL_REQUEST {
                    server.flush().await?;
                    return Ok(());
                }
                let role = startup_user(&body[4..]).unwrap_or_default();
                let cap = caps.read().ok().and_then(|caps| caps.get(&role).copied()).unwrap_or(DEFAULT_CAP);
                break cap;
            }
        }
    };
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

/// The `user` parameter of a startup message's `key\0value\0…\0` list.
fn startup_user(params: &[u8]) -> Option<String> {
    let mut fields = params.split(|b| *b == 0);
    while let (Some(key), Some(value)) = (fields.next(), fields.next()) {
        if key == b"user" {
            return Some(String::from_utf8_lossy(value).into_owned());
        }
    }
    None
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
                client.write_all(&too_large(cap)).await?;
                refused_this_query = true;
            }
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

/// An `ErrorResponse` with SQLSTATE 54000 saying a message was over `cap`.
fn too_large(cap: usize) -> Vec<u8> {
    let message = format!("a row or message of the result is larger than {cap} bytes; select less");
    let mut fields = Vec::new();
    for (code, value) in [(b'S', "ERROR"), (b'V', "ERROR"), (b'C', "54000"), (b'M', message.as_str())] {
        fields.push(code);
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

    #[test]
    fn startup_names_the_user() {
        assert_eq!(startup_user(b"user\0wharf_a\0database\0db\0\0").as_deref(), Some("wharf_a"));
        assert_eq!(startup_user(b"database\0db\0user\0b\0\0").as_deref(), Some("b"));
        assert_eq!(startup_user(b"database\0db\0\0"), None);
    }

    #[test]
    fn the_refusal_is_a_well_formed_error_response() {
        let frame = too_large(10);
        assert_eq!(frame[0], b'E');
        let len = u32::from_be_bytes([frame[1], frame[2], frame[3], frame[4]]) as usize;
        assert_eq!(len + 1, frame.len());
        assert!(frame.windows(6).any(|w| w == b"C54000"));
        assert_eq!(frame.last(), Some(&0));
    }
}
