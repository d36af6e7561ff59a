//! Users, profiles, follows and sessions: registration, roles, validation,
//! uniqueness, login, logout, 401/404/422.

use serde_json::{json, Value};

use crate::{spawn_app, Method, Options, TestDb};

async fn users_profiles_and_sessions(db: &TestDb) {
    let app = &spawn_app(db, Options::default()).await;
    // Registration, roles, validation and uniqueness.
    let alice = app.register("alice", "Alice@Example.com").await;
    assert_eq!(alice["email"], "alice@example.com");
    assert_eq!(
        alice["admin"], false,
        "nobody becomes an admin by registering"
    );
    assert_eq!(alice["bio"], Value::Null);
    let bob = app.register("bob", "bob@example.com").await;
    assert_eq!(bob["admin"], false);
    let (status, body) = app
        .call(Method::POST, "/api/users", None, Some(json!({"user": {"username": "alice", "email": "x@example.com", "password": "long enough"}})))
        .await;
    assert_eq!(
        (status, &body),
        (
            422,
            &json!({"errors": {"username": ["has already been taken"]}})
        )
    );
    let (status, body) = app
        .call(Method::POST, "/api/users", None, Some(json!({"user": {"username": "alice2", "email": "BOB@example.com", "password": "long enough"}})))
        .await;
    assert_eq!(
        (status, &body),
        (
            422,
            &json!({"errors": {"email": ["has already been taken"]}})
        )
    );
    let (status, body) = app
        .call(
            Method::POST,
            "/api/users",
            None,
            Some(json!({"user": {"username": " ", "email": "nope", "password": "short"}})),
        )
        .await;
    assert_eq!(status, 422);
    for field in ["username", "email", "password"] {
        assert!(body["errors"][field].is_array(), "{field} in {body}");
    }
    let resp = app
        .http
        .post(format!("{}/api/users", app.url))
        .header("content-type", "application/json")
        .body("{oops")
        .send()
        .await
        .expect("send");
    assert_eq!(resp.status().as_u16(), 422);
    let body: Value = resp.json().await.expect("JSON");
    assert!(body["errors"]["body"].is_array(), "{body}");

    // Login and the current user.
    let (status, body) = app
        .call(
            Method::POST,
            "/api/users/login",
            None,
            Some(json!({"user": {"email": "alice@example.com", "password": "wrong password"}})),
        )
        .await;
    assert_eq!(
        (status, &body),
        (
            422,
            &json!({"errors": {"email or password": ["is invalid"]}})
        )
    );
    let (status, login) = app
        .call(
            Method::POST,
            "/api/users/login",
            None,
            Some(json!({"user": {"email": "ALICE@example.com", "password": "correct horse"}})),
        )
        .await;
    assert_eq!(status, 200, "{login}");
    let token = login["user"]["token"].as_str().expect("token").to_string();
    let (status, me) = app.call(Method::GET, "/api/user", Some(&token), None).await;
    assert_eq!(
        (status, me["user"]["username"].as_str()),
        (200, Some("alice"))
    );
    assert_eq!(me["user"]["token"], token.as_str());
    let (status, body) = app.call(Method::GET, "/api/user", None, None).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (401, Some("unauthorized"))
    );
    let (status, _) = app
        .call(Method::GET, "/api/user", Some("not.a.jwt"), None)
        .await;
    assert_eq!(status, 401);

    // Updates.
    let (status, updated) = app
        .call(
            Method::PUT,
            "/api/user",
            Some(&token),
            Some(json!({"user": {"bio": "我喜欢写作", "image": "https://example.com/a.png"}})),
        )
        .await;
    assert_eq!(status, 200, "{updated}");
    assert_eq!(updated["user"]["bio"], "我喜欢写作");
    assert_eq!(
        updated["user"]["username"], "alice",
        "untouched fields stay"
    );
    let (status, body) = app
        .call(
            Method::PUT,
            "/api/user",
            Some(&token),
            Some(json!({"user": {"email": "bob@example.com", "currentPassword": "correct horse"}})),
        )
        .await;
    assert_eq!(
        (status, &body),
        (
            422,
            &json!({"errors": {"email": ["has already been taken"]}})
        )
    );

    // Profiles and following.
    let bob_token = bob["token"].as_str().expect("token").to_string();
    let (status, body) = app
        .call(Method::GET, "/api/profiles/nobody", None, None)
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (404, Some("not_found"))
    );
    let (status, profile) = app
        .call(Method::GET, "/api/profiles/alice", None, None)
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        profile,
        json!({"profile": {"username": "alice", "bio": "我喜欢写作", "image": "https://example.com/a.png", "following": false}})
    );
    let (status, followed) = app
        .call(
            Method::POST,
            "/api/profiles/alice/follow",
            Some(&bob_token),
            None,
        )
        .await;
    assert_eq!(
        (status, followed["profile"]["following"].as_bool()),
        (200, Some(true))
    );
    let (_, again) = app
        .call(
            Method::POST,
            "/api/profiles/alice/follow",
            Some(&bob_token),
            None,
        )
        .await;
    assert_eq!(
        again["profile"]["following"], true,
        "following twice is fine"
    );
    let (_, seen) = app
        .call(Method::GET, "/api/profiles/alice", Some(&bob_token), None)
        .await;
    assert_eq!(seen["profile"]["following"], true);
    let (status, _) = app
        .call(Method::GET, "/api/profiles/alice", Some("garbage"), None)
        .await;
    assert_eq!(
        status, 401,
        "a present but invalid token is 401 even where auth is optional"
    );
    let (status, _) = app
        .call(Method::POST, "/api/profiles/alice/follow", None, None)
        .await;
    assert_eq!(status, 401);
    let (status, body) = app
        .call(
            Method::POST,
            "/api/profiles/bob/follow",
            Some(&bob_token),
            None,
        )
        .await;
    assert_eq!((status, body["errors"]["profile"].is_array()), (422, true));
    let (status, unfollowed) = app
        .call(
            Method::DELETE,
            "/api/profiles/alice/follow",
            Some(&bob_token),
            None,
        )
        .await;
    assert_eq!(
        (status, unfollowed["profile"]["following"].as_bool()),
        (200, Some(false))
    );

    // Tags, health, CORS.
    let (status, tags) = app.call(Method::GET, "/api/tags", None, None).await;
    assert_eq!((status, tags), (200, json!({"tags": []})));
    let (status, _) = app.call(Method::GET, "/readyz", None, None).await;
    assert_eq!(status, 200);
    let preflight = app
        .http
        .request(Method::OPTIONS, format!("{}/api/user", app.url))
        .header("Origin", "http://localhost:5173")
        .header("Access-Control-Request-Method", "PUT")
        .header(
            "Access-Control-Request-Headers",
            "authorization,content-type",
        )
        .send()
        .await
        .expect("preflight");
    assert_eq!(
        preflight
            .headers()
            .get("access-control-allow-origin")
            .and_then(|v| v.to_str().ok()),
        Some("*")
    );
    let allowed = preflight
        .headers()
        .get("access-control-allow-headers")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_lowercase();
    assert!(
        allowed.contains("authorization") && allowed.contains("content-type"),
        "{allowed}"
    );

    // Logout revokes the session; other sessions live on.
    let (status, _) = app
        .call(Method::POST, "/api/users/logout", Some(&token), None)
        .await;
    assert_eq!(status, 204);
    let (status, _) = app.call(Method::GET, "/api/user", Some(&token), None).await;
    assert_eq!(status, 401, "a revoked token no longer works");
    let (status, _) = app
        .call(Method::GET, "/api/user", Some(&bob_token), None)
        .await;
    assert_eq!(status, 200);
    let (status, body) = app.call(Method::GET, "/api/nowhere", None, None).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (404, Some("not_found"))
    );
}

crate::on_both_databases!(users_profiles_and_sessions);
