//! `wharf:host/auth`: argon2id password hashing and HS256 tokens signed with
//! one host-wide key, so a token issued by one component verifies in every
//! component granted `auth`. Hashing is CPU-heavy (tens of milliseconds by
//! design) and runs on a blocking thread, never on a request worker.

use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use argon2::Argon2;
use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use wasmtime::component::{HasData, Linker};

use super::bindings::auth::{self, Claims, Host, TokenError};
use crate::state::RequestState;

/// Environment variable holding the signing key (at least 32 bytes).
pub const KEY_ENV: &str = "WHARF_AUTH_KEY";

/// The file in the data dir holding a generated key.
const KEY_FILE: &str = "auth.key";

/// Password hashes computed at once, host-wide. Each takes ~19 MiB and a
/// core for tens of milliseconds; more in parallel only queues on the CPU
/// and multiplies memory (100 concurrent logins would be ~2 GiB).
fn hashing_slots() -> &'static tokio::sync::Semaphore {
    static SLOTS: std::sync::LazyLock<tokio::sync::Semaphore> = std::sync::LazyLock::new(|| {
        let cores = std::thread::available_parallelism().map_or(2, usize::from);
        tokio::sync::Semaphore::new(cores * 2)
    });
    &SLOTS
}

/// The host's token signing key.
pub struct AuthKey {
    encoding: EncodingKey,
    decoding: DecodingKey,
}

impl AuthKey {
    /// The key from `WHARF_AUTH_KEY`, else the one kept in `data_dir`,
    /// generated (and written with owner-only permissions) on first start.
    pub fn load(data_dir: &Path) -> anyhow::Result<Arc<Self>> {
        if let Ok(key) = std::env::var(KEY_ENV) {
            anyhow::ensure!(key.len() >= 32, "{KEY_ENV} must be at least 32 bytes long");
            return Ok(Arc::new(Self::from_secret(key.as_bytes())));
        }
        let path = data_dir.join(KEY_FILE);
        match std::fs::read(&path) {
            Ok(secret) if secret.len() >= 32 => return Ok(Arc::new(Self::from_secret(&secret))),
            Ok(_) => anyhow::bail!("`{}` holds less than 32 bytes; remove it to generate a new key", path.display()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e).with_context(|| format!("cannot read `{}`", path.display())),
        }
        let secret: [u8; 32] = rand::random();
        let secret = hex::encode(secret);
        write_private(&path, secret.as_bytes()).with_context(|| format!("cannot write `{}`", path.display()))?;
        tracing::info!(file = %path.display(), "generated a new token signing key");
        Ok(Arc::new(Self::from_secret(secret.as_bytes())))
    }

    fn from_secret(secret: &[u8]) -> Self {
        Self { encoding: EncodingKey::from_secret(secret), decoding: DecodingKey::from_secret(secret) }
    }
}

fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path)?.write_all(bytes)
}

/// The JWT payload.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct Payload {
    sub: String,
    kind: String,
    jti: String,
    iat: u64,
    exp: u64,
}

impl From<Payload> for Claims {
    fn from(p: Payload) -> Self {
        Claims { subject: p.sub, kind: p.kind, token_id: p.jti, issued_at: p.iat, expires_at: p.exp }
    }
}

/// Per-request state: the host's key.
#[derive(Clone)]
pub struct AuthCtx {
    key: Arc<AuthKey>,
}

impl AuthCtx {
    /// A context signing and verifying with `key`.
    pub fn new(key: Arc<AuthKey>) -> Self {
        Self { key }
    }
}

impl Host for AuthCtx {
    async fn hash_password(&mut self, password: String) -> String {
        let Ok(_slot) = hashing_slots().acquire().await else { return String::new() };
        let hashed = tokio::task::spawn_blocking(move || {
            let salt = SaltString::generate(&mut OsRng);
            Argon2::default().hash_password(password.as_bytes(), &salt).map(|h| h.to_string())
        })
        .await;
        match hashed {
            Ok(Ok(hash)) => hash,
            // Only a resource failure gets here; an unusable hash makes every
            // later verification fail closed.
            Ok(Err(e)) => {
                tracing::error!(error = %e, "password hashing failed");
                String::new()
            }
            Err(e) => {
                tracing::error!(error = %e, "password hashing task failed");
                String::new()
            }
        }
    }

    async fn verify_password(&mut self, password: String, hash: String) -> bool {
        let Ok(_slot) = hashing_slots().acquire().await else { return false };
        tokio::task::spawn_blocking(move || {
            PasswordHash::new(&hash)
                .is_ok_and(|parsed| Argon2::default().verify_password(password.as_bytes(), &parsed).is_ok())
        })
        .await
        .unwrap_or(false)
    }

    async fn sign(&mut self, subject: String, kind: String, ttl_seconds: u32) -> (String, Claims) {
        let iat = u64::try_from(chrono::Utc::now().timestamp()).unwrap_or(0);
        let payload = Payload {
            sub: subject,
            kind,
            jti: uuid::Uuid::new_v4().simple().to_string(),
            iat,
            exp: iat + u64::from(ttl_seconds),
        };
        let token =
            jsonwebtoken::encode(&Header::new(Algorithm::HS256), &payload, &self.key.encoding).unwrap_or_else(|e| {
                // HS256 over a serializable struct cannot fail in practice.
                tracing::error!(error = %e, "token signing failed");
                String::new()
            });
        (token, payload.into())
    }

    async fn verify(&mut self, token: String, kind: String) -> Result<Claims, TokenError> {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = 0;
        validation.set_required_spec_claims(&["exp", "sub"]);
        let payload = jsonwebtoken::decode::<Payload>(&token, &self.key.decoding, &validation)
            .map_err(|e| match e.kind() {
                ErrorKind::ExpiredSignature => TokenError::Expired,
                ErrorKind::InvalidSignature => TokenError::BadSignature,
                _ => TokenError::Malformed,
            })?
            .claims;
        if payload.kind != kind {
            return Err(TokenError::WrongKind);
        }
        Ok(payload.into())
    }
}

struct Auth;

impl HasData for Auth {
    type Data<'a> = &'a mut AuthCtx;
}

pub(super) fn add_to_linker(linker: &mut Linker<RequestState>) -> anyhow::Result<()> {
    auth::add_to_linker::<RequestState, Auth>(linker, |state| &mut state.auth)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx() -> AuthCtx {
        AuthCtx::new(Arc::new(AuthKey::from_secret(b"0123456789abcdef0123456789abcdef")))
    }

    #[tokio::test]
    async fn passwords_hash_and_verify() {
        let mut auth = ctx();
        let hash = auth.hash_password("correct horse".into()).await;
        assert!(hash.starts_with("$argon2id$"), "{hash}");
        assert!(auth.verify_password("correct horse".into(), hash.clone()).await);
        assert!(!auth.verify_password("wrong horse".into(), hash).await);
        assert!(!auth.verify_password("x".into(), "not a hash".into()).await);
    }

    #[tokio::test]
    async fn tokens_verify_only_unexpired_unaltered_and_of_their_kind() {
        let mut auth = ctx();
        let (token, claims) = auth.sign("42".into(), "access".into(), 900).await;
        let verified = auth.verify(token.clone(), "access".into()).await.unwrap();
        assert_eq!((verified.subject.as_str(), verified.token_id.as_str()), ("42", claims.token_id.as_str()));
        assert_eq!(verified.expires_at - verified.issued_at, 900);
        assert!(matches!(auth.verify(token.clone(), "refresh".into()).await, Err(TokenError::WrongKind)));
        assert!(matches!(auth.verify("nonsense".into(), "access".into()).await, Err(TokenError::Malformed)));

        let mut other = AuthCtx::new(Arc::new(AuthKey::from_secret(b"another key, also 32 bytes long!")));
        let (forged, _) = other.sign("42".into(), "access".into(), 900).await;
        assert!(matches!(auth.verify(forged, "access".into()).await, Err(TokenError::BadSignature)));

        let (expired, _) = auth.sign("42".into(), "access".into(), 0).await;
        std::thread::sleep(std::time::Duration::from_millis(1100));
        assert!(matches!(auth.verify(expired, "access".into()).await, Err(TokenError::Expired)));
    }
}
