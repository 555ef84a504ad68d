//! Tokens: `POST login/`, `POST token/refresh/`, `POST token/verify/`, and
//! who a request's `Authorization: Bearer …` says the caller is.
//!
//! Tokens are the host's (`wharf:host/auth`): HS256 JWTs whose subject is
//! the user id and whose kind is `access` or `refresh`. What the host leaves
//! to the component is done here: an access token counts only while its
//! user exists, and a refresh token is exchanged once (its `token-id` is
//! recorded in `used_refresh_tokens`).

use serde_json::{Value as Json, json};
use wharf_guest::auth::{self, Claims, TokenError};
use wharf_guest::store::{self, Value};
use wstd::http::StatusCode;

use wharf_guest::reply::{self, Reply};
use wharf_guest::request::{bearer, bearer_token};

use crate::fields;
use crate::users;

const ACCESS: &str = "access";
const REFRESH: &str = "refresh";

/// Access tokens: 15 minutes unless config `access_ttl_seconds` says otherwise.
const ACCESS_TTL: u32 = 15 * 60;
/// Refresh tokens: 7 days unless config `refresh_ttl_seconds` says otherwise.
const REFRESH_TTL: u32 = 7 * 24 * 60 * 60;

/// How long a used refresh token id is kept past the token's expiry. Only
/// a request that verified the token before it expired and records it after
/// could still need the row; this is far beyond any request deadline.
const USED_GRACE_SECONDS: i64 = 24 * 60 * 60;

/// The same answer for an unknown email and a wrong password.
const BAD_CREDENTIALS: &str = "The email or password is wrong.";

/// What login checks the password against when the email is unknown, so
/// both failures take the same time (one argon2id verification with the
/// host's parameters: m=19456, t=2, p=1). No password matches it.
const DUMMY_HASH: &str =
    "$argon2id$v=19$m=19456,t=2,p=1$EGDprUL3NSQaKcEnu8YaDg$3XdWpLpI17cs/a+lTrMYjaUYtUDqeM6sJ3jvX8no7fs";

/// A token lifetime from config, in seconds; unset or empty is the default.
fn lifetime(key: &str, default: u32) -> u32 {
    match wharf_guest::config::get(key).filter(|v| !v.trim().is_empty()) {
        None => default,
        Some(value) => value.trim().parse::<u32>().ok().filter(|n| *n > 0).unwrap_or_else(|| {
            wharf_guest::error!("config `{key}` = `{value}` is not a positive number of seconds; using {default}");
            default
        }),
    }
}

/// `POST login/` `{email_id, password}` → a token pair, or 401 with one
/// message whether the email or the password was wrong.
pub(crate) fn login(body: &[u8]) -> Result<Reply, Reply> {
    let object = reply::object(body)?;
    let mut bad = serde_json::Map::new();
    fields::no_others(&object, &["email_id", "password"], &mut bad);
    let email = fields::required(&object, "email_id", fields::any, &mut bad);
    let password = fields::required(&object, "password", fields::any, &mut bad);
    let (Some(email), Some(password)) = (email, password) else { return Err(Reply::invalid_fields(bad)) };
    if !bad.is_empty() {
        return Err(Reply::invalid_fields(bad));
    }
    let rows = store::query(
        "SELECT id, password_hash FROM users WHERE email_id = $1",
        &[Value::Text(email.trim().to_ascii_lowercase())],
    )?;
    let user = rows.rows.first().and_then(|row| match (row.first(), row.get(1)) {
        (Some(Value::Integer(id)), Some(Value::Text(hash))) => Some((*id, hash.clone())),
        _ => None,
    });
    // An unknown email still costs one password verification.
    let hash = user.as_ref().map_or(DUMMY_HASH, |(_, hash)| hash.as_str());
    let matches = auth::verify_password(&password, hash);
    match user {
        Some((id, _)) if matches => pair(id),
        _ => Err(Reply::unauthorized("invalid_credentials", BAD_CREDENTIALS)),
    }
}

/// `POST token/refresh/` `{refresh}` → a new pair. Each refresh token works
/// once: its id is recorded, and the primary key makes a second exchange
/// fail even when two race.
pub(crate) fn refresh(body: &[u8]) -> Result<Reply, Reply> {
    let token = single_field(body, "refresh")?;
    let claims = auth::verify(&token, REFRESH).map_err(|e| token_error(e, REFRESH))?;
    let user = existing_subject(&claims)?;
    let now = crate::time::now_unix();
    store::execute(
        "DELETE FROM used_refresh_tokens WHERE expires_at < $1",
        &[Value::Integer(now - USED_GRACE_SECONDS)],
    )?;
    let expires_at = i64::try_from(claims.expires_at).unwrap_or(i64::MAX);
    match store::execute(
        "INSERT INTO used_refresh_tokens (token_id, expires_at) VALUES ($1, $2)",
        &[Value::Text(claims.token_id.clone()), Value::Integer(expires_at)],
    ) {
        Ok(_) => pair(user),
        Err(store::Error::ConstraintViolation(_)) => Err(Reply::unauthorized(
            "token_used",
            "This refresh token was already used; each works once. Log in again (POST /api/auth/login/).",
        )),
        Err(e) => Err(e.into()),
    }
}

/// `POST token/verify/` `{token}` (an access token) → `{"user_id"}`, or 401.
/// The in-process check other components make.
pub(crate) fn verify(body: &[u8]) -> Result<Reply, Reply> {
    let token = single_field(body, "token")?;
    let user = access_user(&token)?;
    Ok(Reply::json(StatusCode::OK, json!({ "user_id": user })))
}

/// The user a request's bearer token names: 401 without a usable one.
pub(crate) fn authenticate(authorization: Option<&str>) -> Result<i64, Reply> {
    access_user(bearer(authorization)?)
}

/// The user a request's bearer token names, if it names one (anything
/// unusable counts as no token at all).
pub(crate) fn caller(authorization: Option<&str>) -> Result<Option<i64>, Reply> {
    let Some(token) = authorization.and_then(bearer_token) else { return Ok(None) };
    match access_user(token) {
        Ok(user) => Ok(Some(user)),
        Err(reply) if reply.status() == StatusCode::UNAUTHORIZED => Ok(None),
        Err(reply) => Err(reply),
    }
}

/// The user of a valid access token whose user still exists.
fn access_user(token: &str) -> Result<i64, Reply> {
    let claims = auth::verify(token, ACCESS).map_err(|e| token_error(e, ACCESS))?;
    existing_subject(&claims)
}

/// The token's subject, if it is a user id that still exists.
fn existing_subject(claims: &Claims) -> Result<i64, Reply> {
    let gone = || Reply::unauthorized("invalid_token", "The token's user no longer exists.");
    let user = claims.subject.parse::<i64>().map_err(|_| gone())?;
    if users::exists(user)? { Ok(user) } else { Err(gone()) }
}

fn token_error(error: TokenError, kind: &str) -> Reply {
    match error {
        TokenError::Expired => Reply::unauthorized(
            "token_expired",
            "The token has expired: refresh it (POST /api/auth/token/refresh/) or log in again.",
        ),
        TokenError::WrongKind => Reply::unauthorized("invalid_token", format!("This is not a {kind} token.")),
        TokenError::BadSignature => {
            Reply::unauthorized("invalid_token", "The token was not issued by this server, or was altered.")
        }
        TokenError::Malformed => Reply::unauthorized("invalid_token", "The token is not a JWT."),
    }
}

/// A body that is exactly `{"<key>": "<non-empty string>"}`.
fn single_field(body: &[u8], key: &str) -> Result<String, Reply> {
    let object = reply::object(body)?;
    let mut bad = serde_json::Map::new();
    fields::no_others(&object, &[key], &mut bad);
    let value = fields::required(&object, key, fields::any, &mut bad);
    match value {
        Some(value) if bad.is_empty() && !value.is_empty() => Ok(value),
        Some(_) if bad.is_empty() => {
            bad.insert(key.into(), Json::from("must not be empty"));
            Err(Reply::invalid_fields(bad))
        }
        _ => Err(Reply::invalid_fields(bad)),
    }
}

/// 200 with a new access and refresh token for `user`.
fn pair(user: i64) -> Result<Reply, Reply> {
    let access_ttl = lifetime("access_ttl_seconds", ACCESS_TTL);
    let refresh_ttl = lifetime("refresh_ttl_seconds", REFRESH_TTL);
    let subject = user.to_string();
    let (access, _) = auth::sign(&subject, ACCESS, access_ttl);
    let (refresh, _) = auth::sign(&subject, REFRESH, refresh_ttl);
    if access.is_empty() || refresh.is_empty() {
        return Err(Reply::internal("the host signed an empty token"));
    }
    let body = json!({"access": access, "refresh": refresh, "token_type": "Bearer", "expires_in": access_ttl});
    // RFC 6749 §5.1: responses carrying tokens must not be cached.
    Ok(Reply::json(StatusCode::OK, body).with_header("cache-control", "no-store"))
}
