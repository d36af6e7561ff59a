//! Accounts under hostile users: no admin by registering, credential changes
//! that need the current password and end other sessions, names that cannot
//! hide characters or imitate others, sessions that outlive a restart, and the
//! RealWorld details a public client relies on.

use bloginfer_blog::admin::{AdminLogin, AdminOutcome};
use serde_json::{json, Value};

use crate::{spawn_app, Method, Options, TestDb};

async fn login(app: &crate::App, email: &str, password: &str) -> (u16, Value) {
    app.call(
        Method::POST,
        "/api/users/login",
        None,
        Some(json!({"user": {"email": email, "password": password}})),
    )
    .await
}

async fn admins_are_made_explicitly_and_a_reset_ends_the_old_password(db: &TestDb) {
    let app = spawn_app(db, Options::default()).await;
    let first = app.register("first", "first@example.com").await;
    assert_eq!(first["admin"], false, "the first account is not an admin");
    let make = |password: &str, reset: bool| AdminLogin {
        email: "First@Example.com".into(),
        username: "ignored".into(),
        password: Some(password.to_string().into()),
        reset_password: reset,
    };
    let old_token = first["token"].as_str().expect("token").to_string();
    assert_eq!(
        app.blog
            .ensure_admin(&make("a new long password", false))
            .await
            .expect("promote"),
        AdminOutcome::Promoted {
            password_reset: false
        }
    );
    let (status, me) = app
        .call(Method::GET, "/api/user", Some(&old_token), None)
        .await;
    assert_eq!((status, &me["user"]["admin"]), (200, &json!(true)));
    assert_eq!(
        login(&app, "first@example.com", "correct horse").await.0,
        200
    );

    // A regenerated login: the new password works, the old one and its sessions do not.
    assert_eq!(
        app.blog
            .ensure_admin(&make("a new long password", true))
            .await
            .expect("reset"),
        AdminOutcome::Promoted {
            password_reset: true
        }
    );
    assert_eq!(
        login(&app, "first@example.com", "correct horse").await.0,
        422
    );
    assert_eq!(
        login(&app, "first@example.com", "a new long password")
            .await
            .0,
        200
    );
    assert_eq!(
        app.call(Method::GET, "/api/user", Some(&old_token), None)
            .await
            .0,
        401
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admins_are_made_explicitly_on_sqlite() {
    admins_are_made_explicitly_and_a_reset_ends_the_old_password(&TestDb::sqlite()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admins_are_made_explicitly_on_mariadb() {
    admins_are_made_explicitly_and_a_reset_ends_the_old_password(&TestDb::mariadb().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changing_credentials_needs_the_current_password_and_ends_other_sessions() {
    let db = TestDb::sqlite();
    let app = spawn_app(&db, Options::default()).await;
    let here = app.register("alice", "alice@example.com").await["token"]
        .as_str()
        .expect("token")
        .to_string();
    let (_, elsewhere) = login(&app, "alice@example.com", "correct horse").await;
    let elsewhere = elsewhere["user"]["token"]
        .as_str()
        .expect("token")
        .to_string();

    for change in [
        json!({"password": "stolen session"}),
        json!({"email": "mallory@example.com"}),
        json!({"password": "stolen session", "currentPassword": "a wrong guess"}),
    ] {
        let (status, body) = app
            .call(
                Method::PUT,
                "/api/user",
                Some(&elsewhere),
                Some(json!({"user": change})),
            )
            .await;
        assert_eq!(status, 422, "{change}: {body}");
        assert!(body["errors"]["currentPassword"].is_array(), "{body}");
    }
    let (status, body) = app
        .call(
            Method::PUT,
            "/api/user",
            Some(&here),
            Some(json!({"user": {"password": "a brand new one", "currentPassword": "correct horse"}})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        app.call(Method::GET, "/api/user", Some(&elsewhere), None)
            .await
            .0,
        401,
        "the other session ended"
    );
    assert_eq!(
        app.call(Method::GET, "/api/user", Some(&here), None)
            .await
            .0,
        200,
        "this one goes on"
    );
    assert_eq!(
        login(&app, "alice@example.com", "a brand new one").await.0,
        200
    );
    // Bio and image: unchanged when absent, cleared by null or "".
    let (_, set) = app
        .call(
            Method::PUT,
            "/api/user",
            Some(&here),
            Some(json!({"user": {"bio": "hi", "image": "https://example.com/a.png"}})),
        )
        .await;
    assert_eq!(
        (&set["user"]["bio"], &set["user"]["image"]),
        (&json!("hi"), &json!("https://example.com/a.png"))
    );
    let (_, kept) = app
        .call(
            Method::PUT,
            "/api/user",
            Some(&here),
            Some(json!({"user": {"username": "alice"}})),
        )
        .await;
    assert_eq!(kept["user"]["bio"], "hi");
    let (_, cleared) = app
        .call(
            Method::PUT,
            "/api/user",
            Some(&here),
            Some(json!({"user": {"bio": null, "image": ""}})),
        )
        .await;
    assert_eq!(
        (&cleared["user"]["bio"], &cleared["user"]["image"]),
        (&Value::Null, &Value::Null),
        "{cleared}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn names_cannot_hide_characters_or_imitate_another() {
    let db = TestDb::sqlite();
    let app = spawn_app(&db, Options::default()).await;
    app.register("alice", "alice@example.com").await;
    let register = |name: &str, email: &str| {
        app.call(
            Method::POST,
            "/api/users",
            None,
            Some(json!({"user": {"username": name, "email": email, "password": "long enough"}})),
        )
    };
    for (i, name) in [
        "ali\u{200B}ce",
        "\u{202E}ecila",
        "bob\u{0000}",
        "ａｌｉｃｅ",
    ]
    .into_iter()
    .enumerate()
    {
        let (status, body) = register(name, &format!("h{i}@example.com")).await;
        assert_eq!(status, 422, "{name:?}: {body}");
        assert!(body["errors"]["username"].is_array(), "{body}");
    }
    for (i, name) in ["аlice", "ALICE", "aIice"].into_iter().enumerate() {
        let (status, body) = register(name, &format!("l{i}@example.com")).await;
        assert_eq!(
            (status, &body),
            (
                422,
                &json!({"errors": {"username": ["has already been taken"]}})
            ),
            "{name:?}"
        );
    }
    assert_eq!(register("小明", "xm@example.com").await.0, 201);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_outlive_a_restart_and_the_database_file_is_private() {
    let db = TestDb::sqlite();
    let token = {
        let app = spawn_app(&db, Options::default()).await;
        app.register("alice", "alice@example.com").await["token"]
            .as_str()
            .expect("token")
            .to_string()
    };
    let restarted = spawn_app(&db, Options::default()).await;
    let (status, me) = restarted
        .call(Method::GET, "/api/user", Some(&token), None)
        .await;
    assert_eq!((status, &me["user"]["username"]), (200, &json!("alice")));
    let file = db.url.trim_start_matches("sqlite://");
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(file)
            .expect("database file")
            .permissions(),
    );
    assert_eq!(mode & 0o077, 0, "{file} is {mode:o}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_public_client_gets_what_realworld_promises() {
    let db = TestDb::sqlite();
    let app = spawn_app(&db, Options::default()).await;
    let token = app.token("alice").await;
    // Any case of the scheme.
    for scheme in ["token", "TOKEN", "Bearer", "bearer"] {
        let resp = app
            .http
            .get(format!("{}/api/user", app.url))
            .header("Authorization", format!("{scheme} {token}"))
            .send()
            .await
            .expect("send");
        assert_eq!(resp.status().as_u16(), 200, "{scheme}");
    }
    // A bad query string is a JSON 422.
    let (status, body) = app
        .call(Method::GET, "/api/articles?limit=abc", None, None)
        .await;
    assert_eq!(status, 422, "{body}");
    assert!(body["errors"]["query"].is_array(), "{body}");
    // CORS: the usual request headers, and a preflight browsers may keep.
    let resp = app
        .http
        .request(Method::OPTIONS, format!("{}/api/articles", app.url))
        .header("Origin", "https://reader.example")
        .header("Access-Control-Request-Method", "POST")
        .header(
            "Access-Control-Request-Headers",
            "x-requested-with, content-type, authorization",
        )
        .send()
        .await
        .expect("send");
    assert_eq!(resp.status().as_u16(), 200);
    let allowed = resp.headers()["access-control-allow-headers"]
        .to_str()
        .expect("ascii")
        .to_lowercase();
    assert!(allowed.contains("x-requested-with"), "{allowed}");
    assert!(resp.headers().contains_key("access-control-max-age"));
}
