//! The Kubernetes launcher against a mock API server (kube's client over a
//! tower-test service): the exact Job and Service bodies it creates from the
//! shipped templates, how it reads Job conditions, the Deployment patch that
//! rolls inference, and what it does on 409, 404 and 500.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use bloginfer_orchestrator::launcher::kubernetes::{
    load_template, KubernetesLauncher, KubernetesSettings,
};
use bloginfer_orchestrator::launcher::{Launcher, Observed, RunPlan};
use http::{Request, Response};
use kube::client::Body;
use serde_json::{json, Value};

const NS: &str = "bloginfer";
const RUN: &str = "run-20261202t080000-abc123";
const IMAGE: &str = "registry.example/bloginfer:1.2.3";
const JOBS: &str = "/apis/batch/v1/namespaces/bloginfer/jobs";
const SERVICES: &str = "/api/v1/namespaces/bloginfer/services";
const DEPLOYMENT: &str = "/apis/apps/v1/namespaces/bloginfer/deployments/inference";

/// One request the mock API server received.
#[derive(Debug, Clone)]
struct Seen {
    method: String,
    path: String,
    content_type: Option<String>,
    body: Value,
}

type Responder = Box<dyn Fn(&Seen, usize) -> (u16, Value) + Send>;

/// A client whose requests `respond` answers (its second argument counts the
/// requests seen before), and the log of those requests.
fn mock(respond: Responder) -> (kube::Client, Arc<Mutex<Vec<Seen>>>) {
    let (service, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    tokio::spawn(async move {
        while let Some((request, send)) = handle.next_request().await {
            let (parts, body) = request.into_parts();
            let bytes = body.collect_bytes().await.unwrap_or_default();
            let request = Seen {
                method: parts.method.to_string(),
                path: parts.uri.path().to_string(),
                content_type: parts
                    .headers
                    .get("content-type")
                    .and_then(|v| v.to_str().ok())
                    .map(String::from),
                body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
            };
            let count = log.lock().map(|l| l.len()).unwrap_or(0);
            let (status, answer) = respond(&request, count);
            if let Ok(mut l) = log.lock() {
                l.push(request);
            }
            let response = Response::builder()
                .status(status)
                .header("content-type", "application/json")
                .body(Body::from(serde_json::to_vec(&answer).unwrap_or_default()))
                .expect("response");
            send.send_response(response);
        }
    });
    (kube::Client::new(service, NS), seen)
}

fn status(code: u16, reason: &str) -> Value {
    json!({"kind": "Status", "apiVersion": "v1", "status": "Failure",
           "message": format!("{reason} (mock)"), "reason": reason, "code": code})
}

fn templates_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/k8s/base/jobs")
}

fn template_json(name: &str) -> Value {
    let raw = std::fs::read_to_string(templates_dir().join(name)).expect("template");
    serde_saphyr::from_str(&raw).expect("YAML")
}

fn launcher(client: kube::Client) -> KubernetesLauncher {
    let settings = KubernetesSettings {
        namespace: NS.into(),
        aggregator_template: load_template(&templates_dir().join("aggregator-job.yaml"))
            .expect("aggregator template"),
        worker_template: load_template(&templates_dir().join("worker-job.yaml"))
            .expect("worker template"),
        image: Some(IMAGE.into()),
        inference_deployment: "inference".into(),
    };
    KubernetesLauncher::new(client, settings).expect("launcher")
}

fn plan() -> RunPlan {
    RunPlan {
        run_id: RUN.into(),
        dir: PathBuf::from("/data/runs").join(RUN),
        workers: 3,
        models_dir: PathBuf::from("/data/models"),
    }
}

fn labels(component: &str) -> Value {
    json!({
        "app.kubernetes.io/name": "bloginfer",
        "app.kubernetes.io/component": component,
        "app.kubernetes.io/managed-by": "bloginfer-orchestrator",
        "bloginfer.io/run-id": RUN,
    })
}

fn merge(target: &mut Value, extra: &Value) {
    if let (Some(t), Some(e)) = (target.as_object_mut(), extra.as_object()) {
        for (k, v) in e {
            t.insert(k.clone(), v.clone());
        }
    }
}

fn env(pairs: &[(&str, String)]) -> Vec<Value> {
    pairs
        .iter()
        .map(|(name, value)| json!({"name": name, "value": value}))
        .collect()
}

/// The aggregator Job the launcher must create: the template, with the run's
/// name, labels, image, args and env.
fn expected_aggregator() -> Value {
    let mut job = template_json("aggregator-job.yaml");
    let dir = format!("/data/runs/{RUN}");
    job["metadata"]["name"] = json!(format!("bloginfer-agg-{RUN}"));
    job["metadata"]["namespace"] = json!(NS);
    merge(&mut job["metadata"]["labels"], &labels("aggregator"));
    merge(
        &mut job["spec"]["template"]["metadata"]["labels"],
        &labels("aggregator"),
    );
    let c = &mut job["spec"]["template"]["spec"]["containers"][0];
    c["image"] = json!(IMAGE);
    // The run's settings are in its directory's run.json, not on the command line.
    c["args"] = json!(["aggregator"]);
    let mut vars = c["env"].as_array().cloned().unwrap_or_default();
    vars.extend(env(&[
        ("LISTEN_ADDR", "0.0.0.0:7000".into()),
        ("FL_RUN_DIR", dir),
        ("MODEL_DIR", "/data/models".into()),
    ]));
    c["env"] = json!(vars);
    job
}

/// The Service in front of the aggregator, owned by its Job.
fn expected_service() -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": format!("bloginfer-agg-{RUN}"),
            "namespace": NS,
            "labels": labels("aggregator"),
            "ownerReferences": [owner()],
        },
        "spec": {
            "selector": {"bloginfer.io/run-id": RUN, "app.kubernetes.io/component": "aggregator"},
            "ports": [{"name": "fl", "port": 7000, "targetPort": 7000, "protocol": "TCP"}],
        },
    })
}

fn owner() -> Value {
    json!({"apiVersion": "batch/v1", "kind": "Job", "name": format!("bloginfer-agg-{RUN}"),
           "uid": "uid-aggregator", "controller": false, "blockOwnerDeletion": false})
}

/// The Indexed worker Job: pod i is worker i, owned by the aggregator Job.
fn expected_workers() -> Value {
    let mut job = template_json("worker-job.yaml");
    job["metadata"]["name"] = json!(format!("bloginfer-workers-{RUN}"));
    job["metadata"]["namespace"] = json!(NS);
    job["metadata"]["ownerReferences"] = json!([owner()]);
    merge(&mut job["metadata"]["labels"], &labels("worker"));
    merge(
        &mut job["spec"]["template"]["metadata"]["labels"],
        &labels("worker"),
    );
    job["spec"]["completions"] = json!(3);
    job["spec"]["parallelism"] = json!(3);
    job["spec"]["completionMode"] = json!("Indexed");
    let c = &mut job["spec"]["template"]["spec"]["containers"][0];
    c["image"] = json!(IMAGE);
    c["args"] = json!(["worker"]);
    let mut vars = c["env"].as_array().cloned().unwrap_or_default();
    vars.extend(env(&[
        (
            "FL_AGGREGATOR_URL",
            format!("http://bloginfer-agg-{RUN}.bloginfer.svc:7000"),
        ),
        ("FL_RUN_ID", RUN.into()),
        ("FL_WORKER_DIR", "/shard".into()),
    ]));
    c["env"] = json!(vars);
    job
}

/// What an API server stores: the body plus a uid.
fn created(body: &Value, uid: &str) -> Value {
    let mut stored = body.clone();
    stored["metadata"]["uid"] = json!(uid);
    stored
}

fn job_named(seen: &Seen) -> Option<String> {
    seen.body["metadata"]["name"].as_str().map(String::from)
}

#[tokio::test]
async fn a_run_is_an_aggregator_job_its_service_and_an_indexed_worker_job() {
    let (client, seen) = mock(Box::new(|req, _| {
        match (req.method.as_str(), req.path.as_str()) {
            ("POST", JOBS) if job_named(req).is_some_and(|n| n.starts_with("bloginfer-agg-")) => {
                (201, created(&req.body, "uid-aggregator"))
            }
            ("POST", JOBS) => (201, created(&req.body, "uid-workers")),
            ("POST", SERVICES) => (201, created(&req.body, "uid-service")),
            _ => (404, status(404, "NotFound")),
        }
    }));
    let handle = launcher(client).start(&plan()).await.expect("start");
    assert_eq!(
        handle,
        json!({"namespace": NS, "aggregator_job": format!("bloginfer-agg-{RUN}"),
               "worker_job": format!("bloginfer-workers-{RUN}")})
    );
    let seen = seen.lock().expect("log").clone();
    let calls: Vec<(&str, &str)> = seen
        .iter()
        .map(|s| (s.method.as_str(), s.path.as_str()))
        .collect();
    assert_eq!(calls, [("POST", JOBS), ("POST", SERVICES), ("POST", JOBS)]);
    assert_eq!(seen[0].body, expected_aggregator());
    assert_eq!(seen[1].body, expected_service());
    assert_eq!(seen[2].body, expected_workers());
}

#[tokio::test]
async fn a_job_that_exists_already_is_taken_over_when_it_is_this_runs() {
    // A restart between creating the Jobs and recording them: 409, then the
    // existing Jobs (labelled with this run) are used.
    let (client, seen) = mock(Box::new(|req, _| {
        match (req.method.as_str(), req.path.as_str()) {
            ("POST", JOBS) | ("POST", SERVICES) => (409, status(409, "AlreadyExists")),
            ("GET", path) if path == format!("{JOBS}/bloginfer-agg-{RUN}") => {
                (200, created(&expected_aggregator(), "uid-aggregator"))
            }
            ("GET", path) if path == format!("{JOBS}/bloginfer-workers-{RUN}") => {
                (200, created(&expected_workers(), "uid-workers"))
            }
            _ => (404, status(404, "NotFound")),
        }
    }));
    launcher(client).start(&plan()).await.expect("start");
    let methods: Vec<String> = seen
        .lock()
        .expect("log")
        .iter()
        .map(|s| format!("{} {}", s.method, s.path))
        .collect();
    assert_eq!(
        methods,
        [
            format!("POST {JOBS}"),
            format!("GET {JOBS}/bloginfer-agg-{RUN}"),
            format!("POST {SERVICES}"),
            format!("POST {JOBS}"),
            format!("GET {JOBS}/bloginfer-workers-{RUN}"),
        ]
    );

    // Someone else's Job under that name is not taken over.
    let (client, _) = mock(Box::new(|req, _| match req.method.as_str() {
        "POST" => (409, status(409, "AlreadyExists")),
        _ => {
            let mut other = created(&expected_aggregator(), "uid-other");
            other["metadata"]["labels"]["bloginfer.io/run-id"] = json!("run-other");
            (200, other)
        }
    }));
    let err = launcher(client).start(&plan()).await.expect_err("not ours");
    assert!(err.to_string().contains("another run"), "{err}");
}

#[tokio::test]
async fn a_worker_job_that_is_not_indexed_is_refused_and_the_run_removed() {
    let (client, seen) = mock(Box::new(|req, _| {
        match (req.method.as_str(), req.path.as_str()) {
            ("POST", JOBS) => {
                let mut stored = created(&req.body, "uid-aggregator");
                // An API server that drops the field it does not know.
                if let Some(spec) = stored["spec"].as_object_mut() {
                    spec.remove("completionMode");
                }
                (201, stored)
            }
            ("POST", SERVICES) => (201, created(&req.body, "uid-service")),
            ("DELETE", _) => (
                200,
                json!({"kind": "Status", "apiVersion": "v1", "status": "Success"}),
            ),
            _ => (404, status(404, "NotFound")),
        }
    }));
    let err = launcher(client).start(&plan()).await.expect_err("refused");
    assert!(err.to_string().contains("not Indexed"), "{err}");
    let deleted: Vec<String> = seen
        .lock()
        .expect("log")
        .iter()
        .filter(|s| s.method == "DELETE")
        .map(|s| s.path.clone())
        .collect();
    assert_eq!(
        deleted,
        [
            format!("{JOBS}/bloginfer-workers-{RUN}"),
            format!("{JOBS}/bloginfer-agg-{RUN}"),
            format!("{SERVICES}/bloginfer-agg-{RUN}"),
        ]
    );
}

#[tokio::test]
async fn api_errors_other_than_conflicts_fail_the_start() {
    let (client, seen) = mock(Box::new(|_, _| (500, status(500, "InternalError"))));
    let err = launcher(client).start(&plan()).await.expect_err("500");
    assert!(err.to_string().contains("creating Job"), "{err}");
    assert_eq!(
        seen.lock().expect("log").len(),
        1,
        "nothing after the failure"
    );
}

fn job_with(conditions: Value) -> Value {
    let mut job = created(&expected_aggregator(), "uid-aggregator");
    job["status"] = json!({"conditions": conditions});
    job
}

async fn observed(respond: Responder) -> Result<Observed, String> {
    let (client, _) = mock(respond);
    launcher(client)
        .observe(&plan(), &json!({}))
        .await
        .map(|(o, replaced)| {
            assert_eq!(replaced, None);
            o
        })
        .map_err(|e| e.to_string())
}

#[tokio::test]
async fn a_run_is_followed_through_its_jobs_conditions() {
    let running = observed(Box::new(|_, _| (200, job_with(json!([]))))).await;
    assert_eq!(running, Ok(Observed::Running));

    let complete = json!([{"type": "Complete", "status": "True"}]);
    let finished = observed(Box::new(move |_, _| (200, job_with(complete.clone())))).await;
    assert_eq!(finished, Ok(Observed::Finished));

    let failed = json!([{"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded",
                         "message": "Job has reached the specified backoff limit"}]);
    let outcome = observed(Box::new(move |_, _| (200, job_with(failed.clone())))).await;
    assert_eq!(
        outcome,
        Ok(Observed::Failed(
            "the aggregator failed: BackoffLimitExceeded: Job has reached the specified backoff limit".into()
        ))
    );

    // The workers failing while the aggregator still runs fails the run.
    let workers_failed =
        json!([{"type": "Failed", "status": "True", "reason": "DeadlineExceeded"}]);
    let outcome = observed(Box::new(move |req, _| {
        if req.path.ends_with(&format!("bloginfer-workers-{RUN}")) {
            (200, job_with(workers_failed.clone()))
        } else {
            (
                200,
                job_with(json!([{"type": "Complete", "status": "False"}])),
            )
        }
    }))
    .await;
    assert_eq!(
        outcome,
        Ok(Observed::Failed(
            "the workers failed: DeadlineExceeded".into()
        ))
    );

    // Workers cleaned up before the aggregator finished: still running.
    let outcome = observed(Box::new(|req, _| {
        if req.path.contains("workers") {
            (404, status(404, "NotFound"))
        } else {
            (200, job_with(json!([])))
        }
    }))
    .await;
    assert_eq!(outcome, Ok(Observed::Running));

    // The aggregator Job gone (deleted by hand, or by its TTL): the run failed.
    let gone = observed(Box::new(|_, _| (404, status(404, "NotFound")))).await;
    assert!(
        matches!(&gone, Ok(Observed::Failed(why)) if why.contains("is gone")),
        "{gone:?}"
    );

    // The API server failing is an error to retry at the next poll, not a verdict.
    let error = observed(Box::new(|_, _| (500, status(500, "InternalError")))).await;
    assert!(error.is_err(), "{error:?}");
}

#[tokio::test]
async fn stopping_deletes_both_jobs_and_the_service_and_ignores_what_is_gone() {
    let (client, seen) = mock(Box::new(|req, _| {
        if req.path.contains("workers") {
            (404, status(404, "NotFound"))
        } else {
            (
                200,
                json!({"kind": "Status", "apiVersion": "v1", "status": "Success"}),
            )
        }
    }));
    launcher(client)
        .stop(&plan(), &json!({}))
        .await
        .expect("stop");
    let seen = seen.lock().expect("log").clone();
    let calls: Vec<String> = seen
        .iter()
        .map(|s| format!("{} {}", s.method, s.path))
        .collect();
    assert_eq!(
        calls,
        [
            format!("DELETE {JOBS}/bloginfer-workers-{RUN}"),
            format!("DELETE {JOBS}/bloginfer-agg-{RUN}"),
            format!("DELETE {SERVICES}/bloginfer-agg-{RUN}"),
        ]
    );
    // Jobs are deleted with their pods.
    assert_eq!(seen[1].body["propagationPolicy"], "Background");
}

#[tokio::test]
async fn rolling_out_patches_the_inference_pod_template_and_retries_server_errors() {
    // 500 once, then accepted.
    let (client, seen) = mock(Box::new(|_, count| {
        if count == 0 {
            (500, status(500, "InternalError"))
        } else {
            (
                200,
                json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "inference"}}),
            )
        }
    }));
    launcher(client)
        .roll_out("20261202T080000000Z-0badcafe")
        .await
        .expect("roll out");
    let seen = seen.lock().expect("log").clone();
    assert_eq!(seen.len(), 2);
    for patch in &seen {
        assert_eq!(patch.method, "PATCH");
        assert_eq!(patch.path, DEPLOYMENT);
        assert_eq!(
            patch.content_type.as_deref(),
            Some("application/strategic-merge-patch+json")
        );
        assert_eq!(
            patch.body,
            json!({"spec": {"template": {"metadata": {"annotations": {
                "bloginfer.io/model-version": "20261202T080000000Z-0badcafe"}}}}})
        );
    }

    // No such Deployment: an error at once, no retries.
    let (client, seen) = mock(Box::new(|_, _| (404, status(404, "NotFound"))));
    let err = launcher(client).roll_out("v").await.expect_err("404");
    assert!(
        err.to_string().contains("patching Deployment inference"),
        "{err}"
    );
    assert_eq!(seen.lock().expect("log").len(), 1);

    // A server that keeps failing: three attempts, then the error.
    let (client, seen) = mock(Box::new(|_, _| (503, status(503, "ServiceUnavailable"))));
    launcher(client).roll_out("v").await.expect_err("503");
    assert_eq!(seen.lock().expect("log").len(), 3);
}

#[test]
fn a_template_without_exactly_one_container_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("job.yaml");
    std::fs::write(
        &path,
        "apiVersion: batch/v1\nkind: Job\nmetadata: {name: x}\nspec:\n  template:\n    spec:\n      restartPolicy: Never\n      containers: []\n",
    )
    .expect("write");
    let err = load_template(&path).expect_err("no container");
    assert!(err.to_string().contains("exactly one container"), "{err}");
    std::fs::write(&path, "kind: [").expect("write");
    assert!(load_template(&path).is_err());
}
