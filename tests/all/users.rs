//! Users and authentication (SPEC §4, component `users`), on both backends:
//! registration and its validation, login with one answer for every wrong
//! credential, one-time refresh tokens, token verification, who sees what,
//! self-only changes, and deleted users' tokens dying with them.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::both_backends;
use crate::support::{Backend, Wharf, error_code};

/// The users component as components.toml declares it, with `config` added.
fn users_manifest(config: &str) -> String {
    format!(
        r#"
        [components.users]
        wasm = "{{wasm:users}}"
        routes = [{{ path = "/api/auth/*" }}]
        grants = {{ interfaces = ["config", "log", "store", "auth"], auth = {{ issue = ["access", "refresh"] }} }}
        migrations = "{{repo}}/components/users/migrations"
        config = {{ {config} }}
        "#
    )
}

async fn start(backend: Backend) -> Wharf {
    Wharf::start_on(&users_manifest(""), backend).await
}

fn person(email: &str) -> Value {
    json!({"email_id": email, "first_name": "Ada", "last_name": "Lovelace", "password": "correct horse",
           "phone_no": "+44 20 7946 0018"})
}

/// Registers `email` (password "correct horse"); returns the new user's id.
async fn register(wharf: &Wharf, email: &str) -> i64 {
    let (status, body) = wharf.post_json("/api/auth/users/", person(email)).await;
    assert_eq!(status, 201, "{body}");
    body["id"].as_i64().unwrap()
}

/// Logs in; returns the token pair.
async fn login(wharf: &Wharf, email: &str) -> Value {
    let (status, body) =
        wharf.post_json("/api/auth/login/", json!({"email_id": email, "password": "correct horse"})).await;
    assert_eq!(status, 200, "{body}");
    body
}

/// Registers and logs in; returns (id, access token, refresh token).
async fn account(wharf: &Wharf, email: &str) -> (i64, String, String) {
    let id = register(wharf, email).await;
    let pair = login(wharf, email).await;
    (id, pair["access"].as_str().unwrap().to_owned(), pair["refresh"].as_str().unwrap().to_owned())
}

async fn get_as(wharf: &Wharf, path: &str, token: &str) -> reqwest::Response {
    wharf.client.get(wharf.url(path)).bearer_auth(token).send().await.unwrap()
}

async fn patch_as(wharf: &Wharf, path: &str, token: &str, body: Value) -> reqwest::Response {
    wharf.client.patch(wharf.url(path)).bearer_auth(token).json(&body).send().await.unwrap()
}

async fn delete_as(wharf: &Wharf, path: &str, token: &str) -> reqwest::Response {
    wharf.client.delete(wharf.url(path)).bearer_auth(token).send().await.unwrap()
}

/// The 400 body's `fields`, after checking it is `invalid_fields`.
async fn invalid_fields(response: reqwest::Response) -> Value {
    assert_eq!(response.status(), 400);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "invalid_fields", "{body}");
    body["error"]["fields"].clone()
}

async fn post(wharf: &Wharf, path: &str, body: Value) -> reqwest::Response {
    wharf.client.post(wharf.url(path)).json(&body).send().await.unwrap()
}

both_backends! {
    async fn registration_returns_the_user_without_password_and_refuses_a_taken_email(backend: Backend) {
        let wharf = start(backend).await;
        let response = post(&wharf, "/api/auth/users/", person("  Ada.Lovelace@Example.COM ")).await;
        assert_eq!(response.status(), 201);
        let location = response.headers()["location"].to_str().unwrap().to_owned();
        let user: Value = response.json().await.unwrap();
        let id = user["id"].as_i64().expect("integer id");
        assert_eq!(location, format!("/api/auth/users/{id}"));
        assert_eq!(user["email_id"], "ada.lovelace@example.com", "stored trimmed and lowercased");
        assert_eq!((user["first_name"].as_str(), user["last_name"].as_str()), (Some("Ada"), Some("Lovelace")));
        assert_eq!(user["phone_no"], "+44 20 7946 0018");
        for key in ["created_at", "updated_at"] {
            let at = user[key].as_str().unwrap();
            assert!(at.ends_with('Z') && chrono::DateTime::parse_from_rfc3339(at).is_ok(), "{key}: {at}");
        }
        let text = user.to_string();
        assert!(user.get("password").is_none(), "{text}");
        assert!(!text.contains("correct horse") && !text.contains("argon2"), "{text}");

        // The same address in another case is taken.
        let response = post(&wharf, "/api/auth/users/", person("ADA.lovelace@example.com")).await;
        assert_eq!(response.status(), 409);
        assert_eq!(error_code(response).await, "email_taken");

        // The password was stored in a form the host's argon2id verifies.
        let pair = login(&wharf, "ada.lovelace@example.com").await;
        let me: Value = get_as(&wharf, &format!("/api/auth/users/{id}"), pair["access"].as_str().unwrap())
            .await.json().await.unwrap();
        assert_eq!(me, user);
    }
}

both_backends! {
    async fn invalid_registrations_are_refused_field_by_field_and_store_nothing(backend: Backend) {
        let wharf = start(backend).await;
        let mut short = person("short@example.com");
        short["password"] = json!("1234567");
        let fields = invalid_fields(post(&wharf, "/api/auth/users/", short).await).await;
        assert!(fields["password"].as_str().unwrap().contains("8 characters"), "{fields}");

        for email in ["not-an-email", "a@b", "a b@example.com", "", "x@-example.com"] {
            let fields = invalid_fields(post(&wharf, "/api/auth/users/", person(email)).await).await;
            assert!(fields["email_id"].is_string(), "{email:?}: {fields}");
        }

        let fields = invalid_fields(post(&wharf, "/api/auth/users/", json!({"email_id": "x@example.com"})).await).await;
        for key in ["first_name", "last_name", "password", "phone_no"] {
            assert_eq!(fields[key], "is required", "{fields}");
        }
        assert!(fields.get("email_id").is_none(), "a good field is not reported: {fields}");

        let mut wrong = person("wrong@example.com");
        wrong["first_name"] = json!(42);
        wrong["last_name"] = json!("   ");
        wrong["phone_no"] = json!("call me");
        wrong["is_admin"] = json!(true);
        let fields = invalid_fields(post(&wharf, "/api/auth/users/", wrong).await).await;
        assert_eq!(fields["first_name"], "must be a string");
        for key in ["last_name", "phone_no", "is_admin"] {
            assert!(fields[key].is_string(), "{key}: {fields}");
        }

        let response = wharf.client.post(wharf.url("/api/auth/users/")).body("{nope").send().await.unwrap();
        assert_eq!(response.status(), 400);
        assert_eq!(error_code(response).await, "invalid_json");
        let response = wharf.client.post(wharf.url("/api/auth/users/")).body("[]").send().await.unwrap();
        assert_eq!(error_code(response).await, "invalid_json");

        // Nothing was stored: the one real user is alone, and the refused
        // addresses are still free.
        let (_, access, _) = account(&wharf, "real@example.com").await;
        let list: Value = get_as(&wharf, "/api/auth/users/", &access).await.json().await.unwrap();
        assert_eq!(list["total"], 1, "{list}");
        for email in ["short@example.com", "x@example.com", "wrong@example.com"] {
            let credentials = json!({"email_id": email, "password": "1234567"});
            let (status, _) = wharf.post_json("/api/auth/login/", credentials).await;
            assert_eq!(status, 401);
            register(&wharf, email).await;
        }
    }
}

both_backends! {
    async fn login_gives_a_token_pair_and_one_answer_for_any_wrong_credential(backend: Backend) {
        let wharf = start(backend).await;
        let id = register(&wharf, "grace@example.com").await;
        let credentials = json!({"email_id": "Grace@Example.com", "password": "correct horse"});
        let response = post(&wharf, "/api/auth/login/", credentials).await;
        assert_eq!(response.status(), 200, "the email is case-insensitive");
        assert_eq!(response.headers()["cache-control"], "no-store");
        let pair: Value = response.json().await.unwrap();
        assert_eq!(pair["token_type"], "Bearer");
        assert_eq!(pair["expires_in"], 900);
        assert_ne!(pair["access"], pair["refresh"]);
        let (status, verified) = wharf.post_json("/api/auth/token/verify/", json!({"token": pair["access"]})).await;
        assert_eq!((status, verified), (200, json!({"user_id": id})));

        let mut answers = Vec::new();
        let mut fastest = [Duration::MAX; 2];
        for round in 0..3 {
            for (i, (email, password)) in
                [("grace@example.com", "wrong horse"), ("nobody@example.com", "correct horse")].into_iter().enumerate()
            {
                let started = Instant::now();
                let response = post(&wharf, "/api/auth/login/", json!({"email_id": email, "password": password})).await;
                fastest[i] = fastest[i].min(started.elapsed());
                assert_eq!(response.status(), 401);
                assert!(response.headers().contains_key("www-authenticate"));
                let body: Value = response.json().await.unwrap();
                if round == 0 {
                    answers.push((body["error"]["code"].clone(), body["error"]["message"].clone()));
                }
            }
        }
        assert_eq!(answers[0], answers[1], "wrong password and unknown email answer alike");
        assert_eq!(answers[0].0, "invalid_credentials");
        // An unknown email still costs a password verification (argon2id:
        // tens of milliseconds), so it is not markedly faster.
        assert!(fastest[1] * 3 >= fastest[0], "unknown email {:?} vs wrong password {:?}", fastest[1], fastest[0]);

        let response = post(&wharf, "/api/auth/login/", json!({"email_id": "grace@example.com"})).await;
        let fields = invalid_fields(response).await;
        assert_eq!(fields["password"], "is required");
    }
}

both_backends! {
    async fn access_tokens_verify_and_refresh_tokens_work_once(backend: Backend) {
        let wharf = start(backend).await;
        let (id, access, refresh) = account(&wharf, "alan@example.com").await;
        let (status, body) = wharf.post_json("/api/auth/token/verify/", json!({"token": access})).await;
        assert_eq!((status, body), (200, json!({"user_id": id})));
        for (token, code) in [(refresh.as_str(), "invalid_token"), ("not.a.jwt", "invalid_token")] {
            let response = post(&wharf, "/api/auth/token/verify/", json!({"token": token})).await;
            assert_eq!(response.status(), 401);
            assert_eq!(error_code(response).await, code);
        }
        // Tampered: another subject under the same signature.
        let mut parts: Vec<String> = access.split('.').map(str::to_owned).collect();
        parts[1] = parts[1].chars().rev().collect();
        let response = post(&wharf, "/api/auth/token/verify/", json!({"token": parts.join(".")})).await;
        assert_eq!(response.status(), 401);
        let fields = invalid_fields(post(&wharf, "/api/auth/token/verify/", json!({})).await).await;
        assert_eq!(fields["token"], "is required");

        // An access token is not a refresh token.
        let response = post(&wharf, "/api/auth/token/refresh/", json!({"refresh": access})).await;
        assert_eq!(error_code(response).await, "invalid_token");

        let (status, pair) = wharf.post_json("/api/auth/token/refresh/", json!({"refresh": refresh})).await;
        assert_eq!(status, 200, "{pair}");
        assert_eq!((pair["token_type"].as_str(), pair["expires_in"].as_i64()), (Some("Bearer"), Some(900)));
        assert_ne!(pair["refresh"], json!(refresh));
        let (status, body) = wharf.post_json("/api/auth/token/verify/", json!({"token": pair["access"]})).await;
        assert_eq!((status, body), (200, json!({"user_id": id})));

        let response = post(&wharf, "/api/auth/token/refresh/", json!({"refresh": refresh})).await;
        assert_eq!(response.status(), 401, "a refresh token works once");
        assert_eq!(error_code(response).await, "token_used");

        // Two exchanges of one token racing: exactly one wins.
        let next = pair["refresh"].as_str().unwrap();
        let (a, b) = tokio::join!(
            wharf.post_json("/api/auth/token/refresh/", json!({"refresh": next})),
            wharf.post_json("/api/auth/token/refresh/", json!({"refresh": next})),
        );
        let mut statuses = [a.0, b.0];
        statuses.sort();
        assert_eq!(statuses, [200, 401], "{a:?} {b:?}");
    }
}

both_backends! {
    async fn expired_tokens_are_refused_as_expired(backend: Backend) {
        let manifest = users_manifest(r#"access_ttl_seconds = "1", refresh_ttl_seconds = "1""#);
        let wharf = Wharf::start_on(&manifest, backend).await;
        let id = register(&wharf, "brief@example.com").await;
        let pair = login(&wharf, "brief@example.com").await;
        assert_eq!(pair["expires_in"], 1, "the lifetime comes from config");
        tokio::time::sleep(Duration::from_millis(2100)).await;
        let response = post(&wharf, "/api/auth/token/verify/", json!({"token": pair["access"]})).await;
        assert_eq!(error_code(response).await, "token_expired");
        let response = get_as(&wharf, &format!("/api/auth/users/{id}"), pair["access"].as_str().unwrap()).await;
        assert_eq!(response.status(), 401);
        assert_eq!(error_code(response).await, "token_expired");
        let response = post(&wharf, "/api/auth/token/refresh/", json!({"refresh": pair["refresh"]})).await;
        assert_eq!(error_code(response).await, "token_expired");
    }
}

both_backends! {
    async fn users_see_their_own_email_and_phone_and_only_names_of_others(backend: Backend) {
        let wharf = start(backend).await;
        let (me, access, _) = account(&wharf, "me@example.com").await;
        let other = register(&wharf, "other@example.com").await;
        assert!(other > me);

        let response = get_as(&wharf, "/api/auth/users/", &access).await;
        assert_eq!(response.status(), 200);
        let list: Value = response.json().await.unwrap();
        assert_eq!((&list["total"], &list["limit"], &list["offset"]), (&json!(2), &json!(50), &json!(0)));
        assert_eq!(list["items"][0]["email_id"], "me@example.com");
        assert_eq!(list["items"][0]["phone_no"], "+44 20 7946 0018");
        assert_eq!(list["items"][1], json!({"id": other, "first_name": "Ada", "last_name": "Lovelace"}));

        let response = get_as(&wharf, "/api/auth/users/?limit=1&offset=1", &access).await;
        let page: Value = response.json().await.unwrap();
        assert_eq!((page["items"].as_array().unwrap().len(), page["total"].as_i64()), (1, Some(2)));
        assert_eq!(page["items"][0]["id"], other);
        let fields = invalid_fields(get_as(&wharf, "/api/auth/users/?limit=-1", &access).await).await;
        assert!(fields["limit"].is_string());

        let theirs: Value = get_as(&wharf, &format!("/api/auth/users/{other}"), &access).await.json().await.unwrap();
        assert_eq!(theirs, json!({"id": other, "first_name": "Ada", "last_name": "Lovelace"}));
        let mine: Value = get_as(&wharf, &format!("/api/auth/users/{me}"), &access).await.json().await.unwrap();
        assert_eq!(mine["email_id"], "me@example.com");
        assert_eq!(mine["phone_no"], "+44 20 7946 0018");

        for path in ["/api/auth/users/999999", "/api/auth/users/abc"] {
            let response = get_as(&wharf, path, &access).await;
            assert_eq!(response.status(), 404, "{path}");
            assert_eq!(error_code(response).await, "not_found");
        }

        // A token is required; each way of lacking one is a 401 with a challenge.
        let response = wharf.get("/api/auth/users/").await;
        assert_eq!(response.status(), 401);
        assert_eq!(response.headers()["www-authenticate"], "Bearer");
        assert_eq!(error_code(response).await, "not_authenticated");
        let response = get_as(&wharf, &format!("/api/auth/users/{me}"), "garbage").await;
        assert_eq!(response.status(), 401);
        assert_eq!(error_code(response).await, "invalid_token");
        let basic = wharf.client.get(wharf.url("/api/auth/users/")).basic_auth("me", Some("x"));
        let response = basic.send().await.unwrap();
        assert_eq!(error_code(response).await, "invalid_token");
    }
}

both_backends! {
    async fn users_change_only_themselves_and_only_names_and_phone(backend: Backend) {
        let wharf = start(backend).await;
        let (me, access, _) = account(&wharf, "me@example.com").await;
        let (other, other_access, _) = account(&wharf, "other@example.com").await;
        let path = format!("/api/auth/users/{me}");

        let change = json!({"first_name": "  Augusta ", "phone_no": "555 0100"});
        let response = patch_as(&wharf, &path, &access, change).await;
        assert_eq!(response.status(), 200);
        let changed: Value = response.json().await.unwrap();
        assert_eq!((&changed["first_name"], &changed["last_name"]), (&json!("Augusta"), &json!("Lovelace")));
        assert_eq!(changed["phone_no"], "555 0100");
        assert_eq!(changed["email_id"], "me@example.com");
        assert!(changed["updated_at"].as_str() > changed["created_at"].as_str(), "{changed}");

        let response = patch_as(&wharf, &path, &other_access, json!({"first_name": "Mallory"})).await;
        assert_eq!(response.status(), 403);
        assert_eq!(error_code(response).await, "forbidden");
        let response = patch_as(&wharf, "/api/auth/users/999999", &access, json!({"first_name": "Nobody"})).await;
        assert_eq!(response.status(), 404);

        let fields = invalid_fields(patch_as(&wharf, &path, &access, json!({})).await).await;
        assert!(fields["_"].as_str().unwrap().contains("at least one"), "{fields}");
        let change = json!({"email_id": "new@example.com", "password": "new password"});
        let fields = invalid_fields(patch_as(&wharf, &path, &access, change).await).await;
        assert_eq!(fields["email_id"], "cannot be changed", "{fields}");
        assert_eq!(fields["password"], "cannot be changed", "{fields}");
        let change = json!({"last_name": "", "first_name": "Ok"});
        let fields = invalid_fields(patch_as(&wharf, &path, &access, change).await).await;
        assert!(fields["last_name"].is_string() && fields.get("first_name").is_none(), "{fields}");

        // The refused requests changed nothing.
        let now: Value = get_as(&wharf, &path, &access).await.json().await.unwrap();
        assert_eq!(now, changed);
        let theirs = get_as(&wharf, &format!("/api/auth/users/{other}"), &other_access).await;
        let theirs: Value = theirs.json().await.unwrap();
        assert_eq!(theirs["first_name"], "Ada");
        let response = wharf.client.patch(wharf.url(&path)).json(&json!({"first_name": "X"})).send().await.unwrap();
        assert_eq!(response.status(), 401);
    }
}

both_backends! {
    async fn a_deleted_users_tokens_stop_working_and_the_id_is_never_reused(backend: Backend) {
        let wharf = start(backend).await;
        let (other, other_access, _) = account(&wharf, "other@example.com").await;
        let (me, access, refresh) = account(&wharf, "me@example.com").await;
        let path = format!("/api/auth/users/{me}");

        let response = delete_as(&wharf, &format!("/api/auth/users/{other}"), &access).await;
        assert_eq!(response.status(), 403, "only yourself");
        let response = delete_as(&wharf, &path, &access).await;
        assert_eq!(response.status(), 204);
        assert!(response.bytes().await.unwrap().is_empty());

        let response = post(&wharf, "/api/auth/token/verify/", json!({"token": access})).await;
        assert_eq!(response.status(), 401);
        assert_eq!(error_code(response).await, "invalid_token");
        let response = get_as(&wharf, &path, &access).await;
        assert_eq!(response.status(), 401);
        assert_eq!(delete_as(&wharf, &path, &access).await.status(), 401);
        let response = post(&wharf, "/api/auth/token/refresh/", json!({"refresh": refresh})).await;
        assert_eq!(response.status(), 401);
        let credentials = json!({"email_id": "me@example.com", "password": "correct horse"});
        let (status, _) = wharf.post_json("/api/auth/login/", credentials).await;
        assert_eq!(status, 401);
        assert_eq!(get_as(&wharf, &path, &other_access).await.status(), 404);

        // The address is free again, under a new id: the old tokens name
        // nobody, not the newcomer.
        let again = register(&wharf, "me@example.com").await;
        assert!(again > me, "{again} reuses a deleted id");
        assert_eq!(post(&wharf, "/api/auth/token/verify/", json!({"token": access})).await.status(), 401);
    }
}

both_backends! {
    async fn a_logged_in_caller_cannot_register(backend: Backend) {
        let wharf = start(backend).await;
        let (_, access, refresh) = account(&wharf, "member@example.com").await;
        let response = wharf
            .client
            .post(wharf.url("/api/auth/users/"))
            .bearer_auth(&access)
            .json(&person("second@example.com"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 403);
        assert_eq!(error_code(response).await, "already_authenticated");
        // A token that is not a valid access token counts as none.
        for (token, email) in [(refresh.as_str(), "second@example.com"), ("stale", "third@example.com")] {
            let response = wharf
                .client
                .post(wharf.url("/api/auth/users/"))
                .bearer_auth(token)
                .json(&person(email))
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), 201);
        }
    }
}

both_backends! {
    async fn wrong_methods_and_paths_get_json_errors_with_the_request_id(backend: Backend) {
        let wharf = start(backend).await;
        let (me, access, _) = account(&wharf, "me@example.com").await;
        let put = wharf.client.put(wharf.url(&format!("/api/auth/users/{me}"))).bearer_auth(&access);
        let response = put.send().await.unwrap();
        assert_eq!(response.status(), 405);
        assert_eq!(response.headers()["allow"], "GET, HEAD, PATCH, DELETE");
        assert_eq!(error_code(response).await, "method_not_allowed");
        let response = wharf.get("/api/auth/login/").await;
        assert_eq!(response.status(), 405);
        assert_eq!(response.headers()["allow"], "POST");
        let response = wharf.client.delete(wharf.url("/api/auth/users/")).send().await.unwrap();
        assert_eq!(response.headers()["allow"], "GET, HEAD, POST");
        let response = wharf.get("/api/auth/nothing-here").await;
        assert_eq!(response.status(), 404);
        assert_eq!(error_code(response).await, "not_found");

        let get = wharf.client.get(wharf.url("/api/auth/users/")).header("x-request-id", "users-test-1");
        let response = get.send().await.unwrap();
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"]["request_id"], "users-test-1");

        let response = wharf.client.head(wharf.url("/api/auth/users")).bearer_auth(&access).send().await.unwrap();
        assert_eq!(response.status(), 200, "HEAD is answered like GET, without the trailing slash too");
    }
}
