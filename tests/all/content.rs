//! Books and their reads and likes (SPEC §4, components `content` and
//! `interactions`, with `users` for tokens): the author rules, the newest
//! and top lists, one read and one like per user and book, a book's
//! interactions going with it, deleted users' tokens, and CSV upload.

use serde_json::{Value, json};

use crate::both_backends;
use crate::support::{Backend, Wharf, error_code};

/// The three components as components.toml declares them.
const MANIFEST: &str = r#"
[components.users]
wasm = "{wasm:users}"
routes = [{ path = "/api/auth/*" }]
grants = { interfaces = ["config", "log", "store", "auth"], auth = { issue = ["access", "refresh"] } }
migrations = "{repo}/components/users/migrations"

[components.content]
wasm = "{wasm:content}"
routes = [
    { path = "/api/content/*" },
    { path = "/api/content/books/upload-csv/*", methods = ["POST"], max_body = "11MiB" },
]
grants = { interfaces = ["config", "log", "store", "auth"], auth = { issue = ["service"] }, outbound = ["http://users.wharf.internal", "http://interactions.wharf.internal"] }
migrations = "{repo}/components/content/migrations"
limits = { deadline = "30s" }

[components.interactions]
wasm = "{wasm:interactions}"
routes = [{ path = "/api/user-interaction/*" }]
grants = { interfaces = ["config", "log", "store", "auth"], outbound = ["http://users.wharf.internal", "http://content.wharf.internal"] }
migrations = "{repo}/components/interactions/migrations"
"#;

async fn start(backend: Backend) -> Wharf {
    Wharf::start_on(MANIFEST, backend).await
}

/// Registers `email` and logs in; returns (user id, access token).
async fn account(wharf: &Wharf, email: &str) -> (i64, String) {
    let person = json!({"email_id": email, "first_name": "Ada", "last_name": "Lovelace", "password": "correct horse",
                        "phone_no": "+44 20 7946 0018"});
    let (status, user) = wharf.post_json("/api/auth/users/", person).await;
    assert_eq!(status, 201, "{user}");
    let credentials = json!({"email_id": email, "password": "correct horse"});
    let (status, pair) = wharf.post_json("/api/auth/login/", credentials).await;
    assert_eq!(status, 200, "{pair}");
    (user["id"].as_i64().unwrap(), pair["access"].as_str().unwrap().to_owned())
}

async fn send(
    wharf: &Wharf,
    method: reqwest::Method,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> reqwest::Response {
    let mut request = wharf.client.request(method, wharf.url(path));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    if let Some(body) = body {
        request = request.json(&body);
    }
    request.send().await.unwrap()
}

async fn post(wharf: &Wharf, path: &str, token: &str, body: Value) -> reqwest::Response {
    send(wharf, reqwest::Method::POST, path, Some(token), Some(body)).await
}

/// Creates a book; returns it.
async fn book(wharf: &Wharf, token: &str, title: &str) -> Value {
    let response =
        post(wharf, "/api/content/books/", token, json!({"title": title, "story": "Once upon a time."})).await;
    assert_eq!(response.status(), 201);
    response.json().await.unwrap()
}

/// Records a read or like (`kind`); returns the status.
async fn interact(wharf: &Wharf, kind: &str, token: &str, content_id: i64) -> u16 {
    let path = format!("/api/user-interaction/{kind}/");
    post(wharf, &path, token, json!({ "content_id": content_id })).await.status().as_u16()
}

/// The ids of a list envelope's items.
fn ids(list: &Value) -> Vec<i64> {
    list["items"].as_array().unwrap().iter().map(|b| b["id"].as_i64().unwrap()).collect()
}

both_backends! {
    async fn books_are_written_by_their_authors_only_and_listed_newest_first(backend: Backend) {
        let wharf = start(backend).await;
        let (ada, ada_token) = account(&wharf, "ada@example.com").await;
        let (_, bob_token) = account(&wharf, "bob@example.com").await;

        let anonymous = send(&wharf, reqwest::Method::POST, "/api/content/books/", None,
                             Some(json!({"title": "T", "story": "S"}))).await;
        assert_eq!(anonymous.status(), 401);
        assert_eq!(error_code(anonymous).await, "not_authenticated");
        let garbage = post(&wharf, "/api/content/books/", "not-a-token", json!({"title": "T", "story": "S"})).await;
        assert_eq!(garbage.status(), 401);
        assert!(garbage.headers().contains_key("www-authenticate"));
        assert_eq!(error_code(garbage).await, "invalid_token");

        let response = post(&wharf, "/api/content/books/", &ada_token,
                            json!({"title": "  Dune ", "description": "Sand.", "story": "Spice must flow."})).await;
        assert_eq!(response.status(), 201);
        let location = response.headers()["location"].to_str().unwrap().to_owned();
        let dune: Value = response.json().await.unwrap();
        let id = dune["id"].as_i64().unwrap();
        assert_eq!(location, format!("/api/content/books/{id}"));
        assert_eq!((dune["title"].as_str(), dune["author"].as_i64()), (Some("Dune"), Some(ada)));
        assert_eq!((dune["description"].as_str(), dune["story"].as_str()), (Some("Sand."), Some("Spice must flow.")));
        for key in ["published_date", "updated_on"] {
            let at = dune[key].as_str().unwrap();
            assert!(at.ends_with('Z') && chrono::DateTime::parse_from_rfc3339(at).is_ok(), "{key}: {at}");
        }
        let (status, fetched) = wharf.get_json(&format!("/api/content/books/{id}")).await;
        assert_eq!((status, &fetched), (200, &dune));

        // Validation: all problems at once, nothing stored.
        let response = post(&wharf, "/api/content/books/", &ada_token,
                            json!({"title": " ", "description": 3, "author": 7})).await;
        assert_eq!(response.status(), 400);
        let body: Value = response.json().await.unwrap();
        let fields = &body["error"]["fields"];
        assert_eq!(body["error"]["code"], "invalid_fields");
        for key in ["title", "description", "story", "author"] {
            assert!(fields[key].is_string(), "{key}: {body}");
        }
        let response = wharf.client.post(wharf.url("/api/content/books/")).bearer_auth(&ada_token)
            .body("{oops").send().await.unwrap();
        assert_eq!(error_code(response).await, "invalid_json");

        // Only the author changes or deletes; at least one field.
        let path = format!("/api/content/books/{id}");
        let response = send(&wharf, reqwest::Method::PATCH, &path, Some(&bob_token), Some(json!({"title": "Mine"}))).await;
        assert_eq!(response.status(), 403);
        assert_eq!(error_code(response).await, "forbidden");
        let response = send(&wharf, reqwest::Method::PATCH, &path, Some(&ada_token), Some(json!({}))).await;
        assert_eq!(response.status(), 400);
        let response = send(&wharf, reqwest::Method::PATCH, &path, Some(&ada_token),
                            Some(json!({"title": "Dune Messiah"}))).await;
        assert_eq!(response.status(), 200);
        let changed: Value = response.json().await.unwrap();
        assert_eq!((changed["title"].as_str(), changed["story"].as_str()), (Some("Dune Messiah"), Some("Spice must flow.")));
        assert_eq!(changed["published_date"], dune["published_date"]);
        assert!(changed["updated_on"].as_str() > dune["updated_on"].as_str());
        let missing = send(&wharf, reqwest::Method::PATCH, "/api/content/books/999", Some(&ada_token),
                           Some(json!({"title": "x"}))).await;
        assert_eq!(missing.status(), 404);
        assert_eq!(wharf.get("/api/content/books/abc").await.status(), 404);

        // Newest first; the list by id; the envelope.
        let second = book(&wharf, &bob_token, "Emma").await["id"].as_i64().unwrap();
        let third = book(&wharf, &ada_token, "Ulysses").await["id"].as_i64().unwrap();
        let (_, newest) = wharf.get_json("/api/content/books/new-contents/").await;
        assert_eq!(ids(&newest), vec![third, second, id]);
        assert_eq!((newest["total"].as_i64(), newest["limit"].as_i64(), newest["offset"].as_i64()),
                   (Some(3), Some(50), Some(0)));
        let (_, list) = wharf.get_json("/api/content/books/?limit=2&offset=1").await;
        assert_eq!((ids(&list), list["total"].as_i64()), (vec![second, third], Some(3)));
        let (status, _) = wharf.get_json("/api/content/books/?limit=-1").await;
        assert_eq!(status, 400);

        let response = send(&wharf, reqwest::Method::DELETE, &path, Some(&bob_token), None).await;
        assert_eq!(response.status(), 403);
        let response = send(&wharf, reqwest::Method::DELETE, &path, Some(&ada_token), None).await;
        assert_eq!(response.status(), 204);
        assert_eq!(error_code(wharf.get(&path).await).await, "not_found");
        let response = send(&wharf, reqwest::Method::PUT, &path, Some(&ada_token), None).await;
        assert_eq!(response.status(), 405);
        let response = send(&wharf, reqwest::Method::POST, "/api/content/books/new-contents/", Some(&ada_token),
                            Some(json!({}))).await;
        assert_eq!(response.status(), 405);
    }
}

both_backends! {
    async fn reads_and_likes_count_once_and_rank_the_top_contents(backend: Backend) {
        let wharf = start(backend).await;
        let (ada, ada_token) = account(&wharf, "ada@example.com").await;
        let (_, bob_token) = account(&wharf, "bob@example.com").await;
        let mut books = Vec::new();
        for title in ["One", "Two", "Three", "Four", "Five"] {
            books.push(book(&wharf, &ada_token, title).await["id"].as_i64().unwrap());
        }
        let [b1, b2, b3, b4, b5] = books[..] else { unreachable!() };

        let response = post(&wharf, "/api/user-interaction/read/", &ada_token, json!({"content_id": b2})).await;
        assert_eq!(response.status(), 201);
        let read: Value = response.json().await.unwrap();
        assert_eq!((read["user_id"].as_i64(), read["content_id"].as_i64(), read["type"].as_str()),
                   (Some(ada), Some(b2), Some("read")));
        assert!(read["id"].is_i64() && read["created_at"].as_str().unwrap().ends_with('Z'), "{read}");

        // b2: 3, b1 and b3: 2 each (tied: b1 first), b4 and b5: none.
        for (kind, token, id) in [("like", &ada_token, b2), ("read", &bob_token, b2), ("read", &ada_token, b3),
                                  ("like", &bob_token, b3), ("like", &ada_token, b1), ("read", &bob_token, b1)] {
            assert_eq!(interact(&wharf, kind, token, id).await, 201, "{kind} {id}");
        }
        let response = post(&wharf, "/api/user-interaction/like/", &ada_token, json!({"content_id": b2})).await;
        assert_eq!(response.status(), 409);
        assert_eq!(error_code(response).await, "duplicate_interaction");
        let response = post(&wharf, "/api/user-interaction/read/", &ada_token, json!({"content_id": 999_999})).await;
        assert_eq!(response.status(), 404);
        assert_eq!(error_code(response).await, "not_found");
        let response = post(&wharf, "/api/user-interaction/read/", &ada_token, json!({"content_id": "1"})).await;
        assert_eq!(error_code(response).await, "invalid_fields");
        let anonymous = send(&wharf, reqwest::Method::POST, "/api/user-interaction/read/", None,
                             Some(json!({"content_id": b4}))).await;
        assert_eq!(anonymous.status(), 401);

        let (status, counts) = wharf.get_json("/api/user-interaction/contents/books/top-contents/").await;
        assert_eq!(status, 200);
        assert_eq!(counts, json!([
            {"content_id": b2, "reads": 2, "likes": 1, "total": 3},
            {"content_id": b1, "reads": 1, "likes": 1, "total": 2},
            {"content_id": b3, "reads": 1, "likes": 1, "total": 2},
        ]));

        let (status, top) = wharf.get_json("/api/content/books/top-contents/").await;
        assert_eq!(status, 200, "{top}");
        assert_eq!(ids(&top), vec![b2, b1, b3, b4, b5]);
        let interactions: Vec<i64> = top["items"].as_array().unwrap().iter()
            .map(|b| b["interactions"].as_i64().unwrap()).collect();
        assert_eq!(interactions, vec![3, 2, 2, 0, 0]);
        assert_eq!(top["total"], 5);
        assert_eq!(top["items"][0]["title"], "Two");
        let (_, page) = wharf.get_json("/api/content/books/top-contents/?limit=2&offset=2").await;
        assert_eq!(ids(&page), vec![b3, b4]);
        let (_, page) = wharf.get_json("/api/content/books/top-contents/?offset=4").await;
        assert_eq!(ids(&page), vec![b5]);

        // Only content may delete interactions: a user's token cannot.
        let response = send(&wharf, reqwest::Method::DELETE, &format!("/api/user-interaction/contents/{b2}/"),
                            Some(&ada_token), None).await;
        assert_eq!(response.status(), 401);

        // Deleting a book deletes its interactions.
        let response = send(&wharf, reqwest::Method::DELETE, &format!("/api/content/books/{b2}"),
                            Some(&ada_token), None).await;
        assert_eq!(response.status(), 204);
        let (_, counts) = wharf.get_json("/api/user-interaction/contents/books/top-contents/").await;
        assert!(counts.as_array().unwrap().iter().all(|c| c["content_id"] != b2), "{counts}");
        let (_, top) = wharf.get_json("/api/content/books/top-contents/").await;
        assert_eq!(ids(&top), vec![b1, b3, b4, b5]);
        assert_eq!(interact(&wharf, "read", &ada_token, b2).await, 404);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_users_token_stops_working_and_their_books_stay() {
    let wharf = start(Backend::Sqlite).await;
    let (ada, token) = account(&wharf, "ada@example.com").await;
    let id = book(&wharf, &token, "Kept").await["id"].as_i64().unwrap();
    let response = send(&wharf, reqwest::Method::DELETE, &format!("/api/auth/users/{ada}"), Some(&token), None).await;
    assert_eq!(response.status(), 204);
    let response = post(&wharf, "/api/content/books/", &token, json!({"title": "T", "story": "S"})).await;
    assert_eq!(response.status(), 401);
    assert_eq!(error_code(response).await, "invalid_token");
    assert_eq!(interact(&wharf, "like", &token, id).await, 401);
    let (status, kept) = wharf.get_json(&format!("/api/content/books/{id}")).await;
    assert_eq!((status, kept["author"].as_i64()), (200, Some(ada)));
}

/// A `multipart/form-data` body with `file` as the field `name`.
fn form(name: &str, file: &[u8]) -> (String, Vec<u8>) {
    let boundary = "----wharf-test-7f3a";
    let mut body = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"; filename=\"books.csv\"\r\n\
         Content-Type: text/csv\r\n\r\n"
    )
    .into_bytes();
    body.extend_from_slice(file);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

async fn upload(wharf: &Wharf, token: &str, name: &str, file: &[u8]) -> reqwest::Response {
    let (content_type, body) = form(name, file);
    wharf
        .client
        .post(wharf.url("/api/content/books/upload-csv/"))
        .bearer_auth(token)
        .header("content-type", content_type)
        .body(body)
        .send()
        .await
        .unwrap()
}

both_backends! {
    async fn csv_upload_stores_every_row_or_none(backend: Backend) {
        let wharf = start(backend).await;
        let (ada, token) = account(&wharf, "ada@example.com").await;
        let good = format!(
            "\u{feff}title,author_id,description,story\r\n\
             Dune,,\"Sand, spice\",\"Line one\nline \"\"two\"\"\"\r\n\
             Emma,{ada},,Matchmaking.\r\n\
             Ulysses,, ,One day.\r\n"
        );
        let response = upload(&wharf, &token, "csv_file", good.as_bytes()).await;
        assert_eq!(response.status(), 201);
        let created: Value = response.json().await.unwrap();
        assert_eq!(created["created"], 3, "{created}");
        let new_ids: Vec<i64> = created["ids"].as_array().unwrap().iter().map(|i| i.as_i64().unwrap()).collect();
        let (_, dune) = wharf.get_json(&format!("/api/content/books/{}", new_ids[0])).await;
        assert_eq!((dune["title"].as_str(), dune["author"].as_i64()), (Some("Dune"), Some(ada)));
        assert_eq!((dune["description"].as_str(), dune["story"].as_str()),
                   (Some("Sand, spice"), Some("Line one\nline \"two\"")));

        // One bad row refuses the file; every bad row is listed.
        let bad = format!(
            "title,author_id,description,story\n\
             Fine,,,Story.\n\
             ,{ada},,Story.\n\
             Other,{},,Story.\n\
             Short,,\n\
             Also fine,,,Story.\n",
            ada + 1
        );
        let response = upload(&wharf, &token, "csv_file", bad.as_bytes()).await;
        assert_eq!(response.status(), 400);
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"]["code"], "invalid_rows", "{body}");
        let rows: Vec<i64> = body["error"]["rows"].as_array().unwrap().iter()
            .map(|r| r["row"].as_i64().unwrap()).collect();
        assert_eq!(rows, vec![2, 3, 4], "{body}");
        assert!(body["error"]["rows"][0]["reason"].as_str().unwrap().contains("title"), "{body}");
        let (_, list) = wharf.get_json("/api/content/books/").await;
        assert_eq!(list["total"], 3, "nothing of the refused file was stored");

        let response = upload(&wharf, &token, "csv_file", b"name,story\nx,y\n").await;
        assert_eq!(error_code(response).await, "invalid_csv");
        let response = upload(&wharf, &token, "file", b"title,author_id,description,story\nx,,,y\n").await;
        assert_eq!(error_code(response).await, "invalid_fields");
        let response = upload(&wharf, &token, "csv_file", b"title,author_id,description,story\n\xff,,,y\n").await;
        assert_eq!(error_code(response).await, "invalid_csv");
        let response = wharf.client.post(wharf.url("/api/content/books/upload-csv/")).bearer_auth(&token)
            .json(&json!({})).send().await.unwrap();
        assert_eq!(response.status(), 415);
        let response = send(&wharf, reqwest::Method::POST, "/api/content/books/upload-csv/", None, None).await;
        assert_eq!(response.status(), 401);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_book_is_kept_when_its_interactions_cannot_be_deleted() {
    // No interactions component: every call to it fails.
    let without = MANIFEST.split("[components.interactions]").next().unwrap();
    let wharf = Wharf::start_on(without, Backend::Sqlite).await;
    let (_, token) = account(&wharf, "ada@example.com").await;
    let id = book(&wharf, &token, "Kept").await["id"].as_i64().unwrap();
    let path = format!("/api/content/books/{id}");
    let response = send(&wharf, reqwest::Method::DELETE, &path, Some(&token), None).await;
    assert_eq!(response.status(), 503);
    assert_eq!(error_code(response).await, "interactions_unavailable");
    assert_eq!(wharf.get(&path).await.status(), 200, "the book is kept");
    let response = wharf.get("/api/content/books/top-contents/").await;
    assert_eq!(error_code(response).await, "interactions_unavailable");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_csv_file_over_10_mib_is_refused() {
    let wharf = start(Backend::Sqlite).await;
    let (_, token) = account(&wharf, "ada@example.com").await;
    let mut file = b"title,author_id,description,story\n".to_vec();
    while file.len() <= 10 * 1024 * 1024 {
        file.extend_from_slice(b"A title,,A description,A story that is long enough to fill the file up quickly.\n");
    }
    let response = upload(&wharf, &token, "csv_file", &file).await;
    assert_eq!(response.status(), 413);
    assert_eq!(error_code(response).await, "file_too_large");
    let (_, list) = wharf.get_json("/api/content/books/").await;
    assert_eq!(list["total"], 0);
}
