//! `wharf:host/auth`: argon2id password hashing and HS256 tokens signed with
//! one host-wide key, so a token issued by one component verifies in every
//! component granted `auth`. Hashing is CPU-heavy (tens of milliseconds by
//! design) and runs on a blocking thread, never on a request worker.
//!
//! Issuing is scoped by the manifest: a component signs only the token kinds
//! its `grants.auth.issue` names (anything else traps it). Every token
//! carries its issuer (the component) and the host's audience, and a token
//! verifies only if its issuer may issue its kind and the audience matches.

#![deny(missing_docs)]

pub mod fair_slots;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use arc_swap::ArcSwap;
use argon2::Argon2;
use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use wasmtime::component::{HasData, Linker};

use wharf_bindings::auth::{self, Claims, Host, TokenError};

use crate::fair_slots::FairSlots;

/// Environment variable holding the signing key (at least 32 bytes).
pub const KEY_ENV: &str = "WHARF_AUTH_KEY";

/// The file in the data dir holding a generated key.
const KEY_FILE: &str = "auth.key";

/// Password hashes computed at once, host-wide. Each takes ~19 MiB and a
/// core for tens of milliseconds; more in parallel only queues on the CPU
/// and multiplies memory (100 concurrent logins would be ~2 GiB).
/// Shared fairly between accounts (see [`FairSlots`]), so a flood of logins
/// for unknown emails cannot starve a real user's.
fn hashing_slots() -> &'static Arc<FairSlots> {
    static SLOTS: std::sync::LazyLock<Arc<FairSlots>> = std::sync::LazyLock::new(|| {
        let cores = std::thread::available_parallelism().map_or(2, usize::from);
        FairSlots::new(cores * 2)
    });
    &SLOTS
}

/// The fairness key of `hash-password` calls (registrations).
const NEW_HASH_KEY: &str = "hash-password";

/// Environment variable naming the audience tokens are issued for.
pub const AUDIENCE_ENV: &str = "WHARF_AUTH_AUDIENCE";

/// The audience when none is configured.
const DEFAULT_AUDIENCE: &str = "wharf";

/// The host's token signing key, and who may issue which kinds of token.
pub struct AuthKey {
    encoding: EncodingKey,
    decoding: DecodingKey,
    audience: String,
    /// Token kind → components that may issue it (from the serving manifest).
    issuers: ArcSwap<BTreeMap<String, BTreeSet<String>>>,
}

impl AuthKey {
    /// The key from `WHARF_AUTH_KEY`, else the one kept in `data_dir`,
    /// generated (and written with owner-only permissions) on first start.
    pub fn load(data_dir: &Path) -> anyhow::Result<Arc<Self>> {
        if let Ok(key) = std::env::var(KEY_ENV) {
            let material = key_material(key.as_bytes());
            anyhow::ensure!(
                material.len() >= 32,
                "{KEY_ENV} holds {} bytes of key material; at least 32 are needed (e.g. 64 hex digits from `openssl rand -hex 32`)",
                material.len()
            );
            return Ok(Arc::new(Self::from_secret(&material)));
        }
        let path = data_dir.join(KEY_FILE);
        match std::fs::read(&path) {
            Ok(secret) if key_material(&secret).len() >= 32 => {
                return Ok(Arc::new(Self::from_secret(&key_material(&secret))));
            }
            Ok(_) => anyhow::bail!(
                "`{}` holds less than 32 bytes of key material; remove it to generate a new key",
                path.display()
            ),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e).with_context(|| format!("cannot read `{}`", path.display())),
        }
        let secret: [u8; 32] = rand::random();
        let secret = hex::encode(secret);
        write_private(&path, secret.as_bytes()).with_context(|| format!("cannot write `{}`", path.display()))?;
        tracing::info!(file = %path.display(), "generated a new token signing key");
        Ok(Arc::new(Self::from_secret(&key_material(secret.as_bytes()))))
    }

    fn from_secret(secret: &[u8]) -> Self {
        let audience = std::env::var(AUDIENCE_ENV).ok().filter(|a| !a.is_empty());
        Self {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            audience: audience.unwrap_or_else(|| DEFAULT_AUDIENCE.to_owned()),
            issuers: ArcSwap::default(),
        }
    }

    /// Records which components may issue which kinds, from the components
    /// now serving: `(component, kinds it may issue)`.
    pub fn set_issuers<'a>(&self, grants: impl IntoIterator<Item = (&'a str, &'a BTreeSet<String>)>) {
        let mut issuers: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for (component, kinds) in grants {
            for kind in kinds {
                issuers.entry(kind.clone()).or_default().insert(component.to_owned());
            }
        }
        self.issuers.store(Arc::new(issuers));
    }

    fn may_issue(&self, issuer: &str, kind: &str) -> bool {
        self.issuers.load().get(kind).is_some_and(|components| components.contains(issuer))
    }
}

/// The key material in a configured key: hex digits decode to their bytes
/// (the generated key is hex), anything else counts byte for byte.
fn key_material(key: &[u8]) -> Vec<u8> {
    let trimmed = key.trim_ascii();
    match hex::decode(trimmed) {
        Ok(bytes) if !trimmed.is_empty() => bytes,
        _ => trimmed.to_vec(),
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
    /// The issuing component.
    iss: String,
    /// The host's audience.
    aud: String,
}

impl From<Payload> for Claims {
    fn from(p: Payload) -> Self {
        Claims { subject: p.sub, kind: p.kind, token_id: p.jti, issued_at: p.iat, expires_at: p.exp }
    }
}

/// Per-request state: the host's key, and who is asking.
#[derive(Clone)]
pub struct AuthCtx {
    key: Arc<AuthKey>,
    component: String,
    may_issue: Arc<BTreeSet<String>>,
}

/// A component asked to sign a kind of token its grant does not name.
#[derive(Debug, thiserror::Error)]
#[error("component `{component}` may not issue `{kind}` tokens: grant it with `grants.auth.issue = [\"{kind}\"]`")]
pub struct IssueNotGranted {
    component: String,
    kind: String,
}

impl AuthCtx {
    /// A context for `component`, which may issue the kinds in `may_issue`.
    pub fn new(key: Arc<AuthKey>, component: &str, may_issue: Arc<BTreeSet<String>>) -> Self {
        Self { key, component: component.to_owned(), may_issue }
    }
}

impl Host for AuthCtx {
    async fn hash_password(&mut self, password: String) -> wasmtime::Result<String> {
        Ok(self.hash(password).await)
    }

    async fn verify_password(&mut self, password: String, hash: String) -> wasmtime::Result<bool> {
        Ok(self.check_password(password, hash).await)
    }

    async fn sign(&mut self, subject: String, kind: String, ttl_seconds: u32) -> wasmtime::Result<(String, Claims)> {
        if !self.may_issue.contains(&kind) {
            tracing::warn!(component = %self.component, kind, "refused to issue a token kind the grant does not name");
            return Err(wasmtime::Error::new(IssueNotGranted { component: self.component.clone(), kind }));
        }
        Ok(self.issue(subject, kind, ttl_seconds))
    }

    async fn verify(&mut self, token: String, kind: String) -> wasmtime::Result<Result<Claims, TokenError>> {
        Ok(self.check_token(&token, &kind))
    }
}

impl AuthCtx {
    async fn hash(&self, password: String) -> String {
        let Ok(_slot) = hashing_slots().acquire(NEW_HASH_KEY).await else { return String::new() };
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

    async fn check_password(&self, password: String, hash: String) -> bool {
        // One key per stored hash: per account.
        let Ok(_slot) = hashing_slots().acquire(&hash).await else { return false };
        tokio::task::spawn_blocking(move || {
            PasswordHash::new(&hash).is_ok_and(|parsed| {
                affordable(&parsed) && Argon2::default().verify_password(password.as_bytes(), &parsed).is_ok()
            })
        })
        .await
        .unwrap_or(false)
    }

    fn issue(&self, subject: String, kind: String, ttl_seconds: u32) -> (String, Claims) {
        let iat = u64::try_from(chrono::Utc::now().timestamp()).unwrap_or(0);
        let payload = Payload {
            sub: subject,
            kind,
            jti: uuid::Uuid::new_v4().simple().to_string(),
            iat,
            exp: iat + u64::from(ttl_seconds),
            iss: self.component.clone(),
            aud: self.key.audience.clone(),
        };
        let token =
            jsonwebtoken::encode(&Header::new(Algorithm::HS256), &payload, &self.key.encoding).unwrap_or_else(|e| {
                // HS256 over a serializable struct cannot fail in practice.
                tracing::error!(error = %e, "token signing failed");
                String::new()
            });
        (token, payload.into())
    }

    fn check_token(&self, token: &str, kind: &str) -> Result<Claims, TokenError> {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = 0;
        validation.set_required_spec_claims(&["exp", "sub", "iss", "aud"]);
        validation.set_audience(&[&self.key.audience]);
        let payload = jsonwebtoken::decode::<Payload>(token, &self.key.decoding, &validation)
            .map_err(|e| match e.kind() {
                ErrorKind::ExpiredSignature => TokenError::Expired,
                // Signed by this key but for another audience: not ours.
                ErrorKind::InvalidSignature | ErrorKind::InvalidAudience => TokenError::BadSignature,
                _ => TokenError::Malformed,
            })?
            .claims;
        if payload.kind != kind {
            return Err(TokenError::WrongKind);
        }
        // Only a component granted this kind can have issued it.
        if !self.key.may_issue(&payload.iss, &payload.kind) {
            return Err(TokenError::BadSignature);
        }
        Ok(payload.into())
    }
}

/// Whether a hash's own cost settings are at most what `hash-password`
/// uses: the hash comes from the component, and argon2 would otherwise
/// allocate and compute whatever it names (`m=4294967295` aborts a process).
fn affordable(hash: &PasswordHash<'_>) -> bool {
    let defaults = argon2::Params::default();
    hash.algorithm == argon2::Algorithm::Argon2id.ident()
        && argon2::Params::try_from(hash).is_ok_and(|p| {
            p.m_cost() <= defaults.m_cost() && p.t_cost() <= defaults.t_cost() && p.p_cost() <= defaults.p_cost()
        })
}

/// What a host call borrows: the request's context.
pub type AuthView<'a> = &'a mut AuthCtx;

struct HasAuth;

impl HasData for HasAuth {
    type Data<'a> = AuthView<'a>;
}

/// Adds `wharf:host/auth` to `linker`, reaching each store's context
/// through `get`.
pub fn add_to_linker<T: Send + 'static>(
    linker: &mut Linker<T>,
    get: fn(&mut T) -> AuthView<'_>,
) -> wasmtime::Result<()> {
    auth::add_to_linker::<T, HasAuth>(linker, get)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(secret: &[u8]) -> Arc<AuthKey> {
        let key = Arc::new(AuthKey::from_secret(secret));
        let users: BTreeSet<String> = ["access".to_owned(), "refresh".to_owned()].into();
        key.set_issuers([("users", &users)]);
        key
    }

    fn ctx(key: &Arc<AuthKey>, component: &str, kinds: &[&str]) -> AuthCtx {
        AuthCtx::new(key.clone(), component, Arc::new(kinds.iter().map(|k| (*k).to_owned()).collect()))
    }

    #[tokio::test]
    async fn passwords_hash_and_verify() {
        let mut auth = ctx(&key(b"0123456789abcdef0123456789abcdef"), "users", &[]);
        let hash = auth.hash_password("correct horse".into()).await.unwrap();
        assert!(hash.starts_with("$argon2id$"), "{hash}");
        assert!(auth.verify_password("correct horse".into(), hash.clone()).await.unwrap());
        assert!(!auth.verify_password("wrong horse".into(), hash).await.unwrap());
        assert!(!auth.verify_password("x".into(), "not a hash".into()).await.unwrap());
        // A hash naming a huge cost is refused, not computed.
        let greedy = "$argon2id$v=19$m=4294967295,t=1,p=1$c2FsdHNhbHQ$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
        assert!(!auth.verify_password("x".into(), greedy.into()).await.unwrap());
    }

    #[tokio::test]
    async fn tokens_verify_only_unexpired_unaltered_and_of_their_kind() {
        let key = key(b"0123456789abcdef0123456789abcdef");
        let mut auth = ctx(&key, "users", &["access", "refresh"]);
        let (token, claims) = auth.sign("42".into(), "access".into(), 900).await.unwrap();
        let verified = auth.verify(token.clone(), "access".into()).await.unwrap().unwrap();
        assert_eq!((verified.subject.as_str(), verified.token_id.as_str()), ("42", claims.token_id.as_str()));
        assert_eq!(verified.expires_at - verified.issued_at, 900);
        assert!(matches!(auth.verify(token.clone(), "refresh".into()).await.unwrap(), Err(TokenError::WrongKind)));
        assert!(matches!(auth.verify("nonsense".into(), "access".into()).await.unwrap(), Err(TokenError::Malformed)));

        let other_key = Arc::new(AuthKey::from_secret(b"another key, also 32 bytes long!"));
        let mut other = ctx(&other_key, "users", &["access"]);
        let (forged, _) = other.sign("42".into(), "access".into(), 900).await.unwrap();
        assert!(matches!(auth.verify(forged, "access".into()).await.unwrap(), Err(TokenError::BadSignature)));

        let (expired, _) = auth.sign("42".into(), "access".into(), 0).await.unwrap();
        std::thread::sleep(std::time::Duration::from_millis(1100));
        assert!(matches!(auth.verify(expired, "access".into()).await.unwrap(), Err(TokenError::Expired)));
    }

    #[tokio::test]
    async fn only_granted_components_issue_and_only_their_tokens_verify() {
        let key = key(b"0123456789abcdef0123456789abcdef");
        // A component with `auth` but no issue grant cannot sign at all.
        let mut verifier = ctx(&key, "eye", &[]);
        let refused = verifier.sign("1".into(), "access".into(), 900).await.unwrap_err();
        assert!(refused.to_string().contains("may not issue `access`"), "{refused}");
        // One granted another kind cannot pass its tokens off as `access`
        // from a component that is not an access issuer.
        let mut content = ctx(&key, "content", &["service"]);
        assert!(content.sign("1".into(), "access".into(), 900).await.is_err());
        let (service, _) = content.sign("1".into(), "service".into(), 60).await.unwrap();
        assert!(matches!(
            verifier.verify(service.clone(), "service".into()).await.unwrap(),
            Err(TokenError::BadSignature)
        ));
        let granted: BTreeSet<String> = ["service".to_owned()].into();
        let users: BTreeSet<String> = ["access".to_owned(), "refresh".to_owned()].into();
        key.set_issuers([("users", &users), ("content", &granted)]);
        assert!(verifier.verify(service, "service".into()).await.unwrap().is_ok());
    }

    #[test]
    fn short_keys_are_measured_by_their_material() {
        assert_eq!(key_material(b"00ff").len(), 2);
        assert_eq!(key_material(&[b'a'; 64]).len(), 32, "64 hex digits are 32 bytes");
        assert_eq!(key_material(b"not hex but long enough to be 32 bytes").len(), 38);
        assert_eq!(key_material(b"  0011  \n").len(), 2);
    }
}
