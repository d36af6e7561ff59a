//! The Kubernetes manifests as rendered by `kubectl kustomize` for each overlay
//! (by `scripts/check-manifests.sh`, which also validates them against the
//! Kubernetes 1.33 schemas), parsed object by object with k8s-openapi, and the
//! invariants that schemas cannot see: selectors match labels, Services reach
//! container ports, every container has probes, resources and runs as
//! non-root, the env the manifests set is the env the binary reads, the Role
//! is exactly what the Kubernetes launcher calls, and no secret value is
//! written anywhere.
//!
//! `BLOGINFER_MANIFESTS_DIR` may point at a directory the script rendered
//! already (the test command does that); otherwise the script runs here.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{ConfigMap, Container, PodTemplateSpec, Service};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde::de::DeserializeOwned;
use serde_json::Value;

const OVERLAYS: [&str; 2] = ["dev", "prod"];
const NAMESPACE: &str = "bloginfer";

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The rendered output directory (rendered once per test binary).
fn rendered() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        if let Some(dir) = std::env::var_os("BLOGINFER_MANIFESTS_DIR") {
            return PathBuf::from(dir);
        }
        let dir = std::env::temp_dir().join(format!("bloginfer-manifests-{}", std::process::id()));
        let out = Command::new("bash")
            .arg(root().join("scripts/check-manifests.sh"))
            .arg(&dir)
            .output()
            .expect("run scripts/check-manifests.sh");
        assert!(
            out.status.success(),
            "check-manifests failed:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        dir
    })
}

/// One overlay's objects.
struct Overlay {
    name: &'static str,
    docs: Vec<Value>,
    templates: BTreeMap<String, Job>,
}

impl Overlay {
    fn load(name: &'static str) -> Self {
        let dir = rendered();
        let text = std::fs::read_to_string(dir.join(format!("{name}.yaml"))).expect("rendered");
        let docs: Vec<Value> = serde_saphyr::from_multiple(&text).expect("YAML documents");
        let mut templates = BTreeMap::new();
        for key in ["aggregator-job.yaml", "worker-job.yaml"] {
            let text = std::fs::read_to_string(dir.join(format!("{name}.jobs")).join(key))
                .expect("job template");
            templates.insert(
                key.to_string(),
                serde_saphyr::from_str(&text).expect("a Job"),
            );
        }
        let overlay = Self {
            name,
            docs,
            templates,
        };
        // The templates the orchestrator reads are those in its ConfigMap.
        let maps: Vec<ConfigMap> = overlay.all("ConfigMap");
        let jobs = maps
            .iter()
            .find(|m| name_of(&m.metadata).starts_with("bloginfer-job-templates"))
            .expect("the job templates ConfigMap");
        for (key, job) in &overlay.templates {
            let data = jobs
                .data
                .as_ref()
                .and_then(|d| d.get(key))
                .expect("template key");
            let parsed: Job = serde_saphyr::from_str(data).expect("a Job");
            assert_eq!(&parsed, job, "{name}: {key}");
        }
        overlay
    }

    /// Every object of `kind`, parsed as `T` (so every field must fit the type).
    fn all<T: DeserializeOwned>(&self, kind: &str) -> Vec<T> {
        self.docs
            .iter()
            .filter(|d| d["kind"] == kind)
            .map(|d| {
                serde_json::from_value(d.clone()).unwrap_or_else(|e| {
                    panic!("{}: {kind} {}: {e}", self.name, d["metadata"]["name"])
                })
            })
            .collect()
    }

    /// Pod templates: (where, template, is a Job template).
    fn pods(&self) -> Vec<(String, PodTemplateSpec, bool)> {
        let mut pods = Vec::new();
        for d in self.all::<Deployment>("Deployment") {
            let spec = d.spec.expect("spec");
            pods.push((
                format!("Deployment/{}", name_of(&d.metadata)),
                spec.template,
                false,
            ));
        }
        for s in self.all::<StatefulSet>("StatefulSet") {
            let spec = s.spec.expect("spec");
            pods.push((
                format!("StatefulSet/{}", name_of(&s.metadata)),
                spec.template,
                false,
            ));
        }
        for (key, job) in &self.templates {
            let spec = job.spec.clone().expect("spec");
            pods.push((format!("template {key}"), spec.template, true));
        }
        pods
    }
}

fn name_of(meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta) -> String {
    meta.name.clone().unwrap_or_default()
}

fn overlays() -> Vec<Overlay> {
    OVERLAYS.iter().map(|o| Overlay::load(o)).collect()
}

fn labels_of(template: &PodTemplateSpec) -> BTreeMap<String, String> {
    template
        .metadata
        .as_ref()
        .and_then(|m| m.labels.clone())
        .unwrap_or_default()
}

fn selects(selector: &BTreeMap<String, String>, labels: &BTreeMap<String, String>) -> bool {
    selector.iter().all(|(k, v)| labels.get(k) == Some(v))
}

fn containers(template: &PodTemplateSpec) -> Vec<Container> {
    template
        .spec
        .as_ref()
        .map(|s| s.containers.clone())
        .unwrap_or_default()
}

#[test]
fn workloads_select_their_own_pods_and_services_reach_container_ports() {
    for o in overlays() {
        for d in o.all::<Deployment>("Deployment") {
            let spec = d.spec.expect("spec");
            let selector = spec.selector.match_labels.clone().unwrap_or_default();
            assert!(
                !selector.is_empty(),
                "{}: {:?} selects nothing",
                o.name,
                d.metadata.name
            );
            assert!(
                selects(&selector, &labels_of(&spec.template)),
                "{}: {:?}",
                o.name,
                d.metadata.name
            );
        }
        for s in o.all::<StatefulSet>("StatefulSet") {
            let spec = s.spec.expect("spec");
            let selector = spec.selector.match_labels.clone().unwrap_or_default();
            assert!(
                selects(&selector, &labels_of(&spec.template)),
                "{}: {:?}",
                o.name,
                s.metadata.name
            );
        }
        let pods = o.pods();
        let long_running: Vec<_> = pods.iter().filter(|(_, _, job)| !job).collect();
        for svc in o.all::<Service>("Service") {
            let spec = svc.spec.expect("spec");
            let selector = spec.selector.clone().unwrap_or_default();
            let matched: Vec<_> = long_running
                .iter()
                .filter(|(_, t, _)| !selector.is_empty() && selects(&selector, &labels_of(t)))
                .collect();
            assert!(
                !matched.is_empty(),
                "{}: Service {:?} selects no pods",
                o.name,
                svc.metadata.name
            );
            for port in spec.ports.unwrap_or_default() {
                for (where_, template, _) in &matched {
                    let ports: Vec<_> = containers(template)
                        .into_iter()
                        .flat_map(|c| c.ports.unwrap_or_default())
                        .collect();
                    let reached = match port
                        .target_port
                        .clone()
                        .unwrap_or(IntOrString::Int(port.port))
                    {
                        IntOrString::Int(n) => ports.iter().any(|p| p.container_port == n),
                        IntOrString::String(name) => {
                            ports.iter().any(|p| p.name.as_deref() == Some(&name))
                        }
                    };
                    assert!(
                        reached,
                        "{}: Service {:?} port {:?} is no container port of {where_}",
                        o.name, svc.metadata.name, port
                    );
                }
            }
        }
        for pdb in o.all::<PodDisruptionBudget>("PodDisruptionBudget") {
            let selector = pdb
                .spec
                .and_then(|s| s.selector)
                .and_then(|s| s.match_labels)
                .unwrap_or_default();
            assert!(
                long_running
                    .iter()
                    .any(|(_, t, _)| !selector.is_empty() && selects(&selector, &labels_of(t))),
                "{}: PDB {:?} selects no pods",
                o.name,
                pdb.metadata.name
            );
        }
        let deployments: BTreeSet<String> = o
            .all::<Deployment>("Deployment")
            .iter()
            .map(|d| name_of(&d.metadata))
            .collect();
        for hpa in o.all::<HorizontalPodAutoscaler>("HorizontalPodAutoscaler") {
            let target = hpa.spec.expect("spec").scale_target_ref;
            assert_eq!(target.kind, "Deployment");
            assert!(
                deployments.contains(&target.name),
                "{}: HPA scales {}",
                o.name,
                target.name
            );
        }
        // A policy that names pods names pods that exist (long-running or run pods).
        for np in o.all::<NetworkPolicy>("NetworkPolicy") {
            let selector = np
                .spec
                .and_then(|s| s.pod_selector)
                .and_then(|s| s.match_labels)
                .unwrap_or_default();
            if selector.is_empty() {
                continue;
            }
            assert!(
                pods.iter()
                    .any(|(_, t, _)| selects(&selector, &labels_of(t))),
                "{}: NetworkPolicy {:?} selects no pods",
                o.name,
                np.metadata.name
            );
        }
    }
}

#[test]
fn every_container_has_probes_resources_and_runs_as_non_root() {
    for o in overlays() {
        for (where_, template, _) in o.pods() {
            let pod = template.spec.clone().expect("pod spec");
            let pod_non_root = pod
                .security_context
                .as_ref()
                .and_then(|s| s.run_as_non_root);
            let init = pod.init_containers.clone().unwrap_or_default();
            for (c, is_init) in pod
                .containers
                .iter()
                .map(|c| (c, false))
                .chain(init.iter().map(|c| (c, true)))
            {
                let at = format!("{}: {where_} container {}", o.name, c.name);
                if !is_init {
                    assert!(c.liveness_probe.is_some(), "{at}: no liveness probe");
                    assert!(c.readiness_probe.is_some(), "{at}: no readiness probe");
                }
                let resources = c.resources.clone().unwrap_or_default();
                for (part, map) in [
                    ("requests", resources.requests),
                    ("limits", resources.limits),
                ] {
                    let map = map.unwrap_or_default();
                    assert!(
                        map.contains_key("cpu") && map.contains_key("memory"),
                        "{at}: {part} lack cpu or memory"
                    );
                }
                let sc = c.security_context.clone().unwrap_or_default();
                assert_eq!(
                    sc.run_as_non_root.or(pod_non_root),
                    Some(true),
                    "{at}: may run as root"
                );
                assert_eq!(
                    sc.allow_privilege_escalation,
                    Some(false),
                    "{at}: privilege escalation"
                );
                assert_eq!(
                    sc.read_only_root_filesystem,
                    Some(true),
                    "{at}: writable root filesystem"
                );
            }
        }
    }
}

/// The env names `bloginfer <command>` reads, from its `--help`.
fn env_read_by(command: &str) -> BTreeSet<String> {
    let out = Command::new(crate::support::BIN)
        .args([command, "--help"])
        .output()
        .expect("bloginfer --help");
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout).to_string();
    let mut names: BTreeSet<String> = help
        .split("[env: ")
        .skip(1)
        .filter_map(|rest| rest.split(['=', ']']).next())
        .map(str::to_string)
        .collect();
    // Read by the log subscriber, not by a flag.
    names.insert("RUST_LOG".into());
    names
}

fn env_names(c: &Container) -> BTreeSet<String> {
    c.env.iter().flatten().map(|e| e.name.clone()).collect()
}

/// The subcommand a container runs, when it runs the bloginfer binary.
fn subcommand(c: &Container) -> Option<String> {
    let image = c.image.clone().unwrap_or_default();
    let repository = image.rsplit('/').next().unwrap_or_default();
    if !repository.starts_with("bloginfer") {
        return None;
    }
    c.args.as_ref().and_then(|a| a.first()).cloned()
}

/// The env the Kubernetes launcher adds to the templates' containers.
fn launcher_env(templates: &BTreeMap<String, Job>) -> (BTreeSet<String>, BTreeSet<String>) {
    use bloginfer_orchestrator::launcher::kubernetes::{KubernetesLauncher, KubernetesSettings};
    use bloginfer_orchestrator::launcher::RunPlan;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        // The client is never called: only the bodies are built.
        let (service, _handle) = tower_test::mock::pair::<
            http::Request<kube::client::Body>,
            http::Response<kube::client::Body>,
        >();
        let client = kube::Client::new(service, NAMESPACE);
        let launcher = KubernetesLauncher::new(
            client,
            KubernetesSettings {
                namespace: NAMESPACE.into(),
                aggregator_template: templates["aggregator-job.yaml"].clone(),
                worker_template: templates["worker-job.yaml"].clone(),
                image: None,
                inference_deployment: "inference".into(),
            },
        )
        .expect("launcher");
        let plan = RunPlan {
            run_id: "run-x".into(),
            dir: PathBuf::from("/data/runs/run-x"),
            workers: 2,
            models_dir: PathBuf::from("/data/models"),
        };
        let mut aggregator = launcher.aggregator_job(&plan).expect("job");
        aggregator.metadata.uid = Some("uid".into());
        let workers = launcher.worker_job(&plan, &aggregator).expect("job");
        let env_of = |job: &Job| {
            let template = job.spec.clone().expect("spec").template;
            env_names(&containers(&template)[0])
        };
        (env_of(&aggregator), env_of(&workers))
    })
}

#[test]
fn the_env_the_manifests_set_is_the_env_the_binary_reads() {
    let mut read = BTreeMap::new();
    for command in ["blog", "infer", "orchestrator", "aggregator", "worker"] {
        read.insert(command.to_string(), env_read_by(command));
    }
    for o in overlays() {
        let mut seen = BTreeSet::new();
        for (where_, template, _) in o.pods() {
            for c in containers(&template) {
                let Some(command) = subcommand(&c) else {
                    continue;
                };
                let reads = read
                    .get(&command)
                    .unwrap_or_else(|| panic!("{}: {where_} runs `bloginfer {command}`", o.name));
                let set = env_names(&c);
                let unknown: Vec<_> = set.difference(reads).collect();
                assert!(
                    unknown.is_empty(),
                    "{}: {where_} sets {unknown:?}, which `bloginfer {command}` does not read",
                    o.name
                );
                seen.insert(command.clone());
                if command == "orchestrator" {
                    // The daemon's documented settings, all set explicitly.
                    for name in [
                        "NAMESPACE",
                        "MODEL_DIR",
                        "MIN_TRAIN_INTERVAL_SECONDS",
                        "TRAIN_POLL_INTERVAL_SECONDS",
                        "CLEAN_INTERVAL_SECONDS",
                        "MAX_CLIENT_MODEL_AGE_SECONDS",
                        "TRAIN_JOB_YAML",
                        "AGG_JOB_YAML",
                        "INFERENCE_DEPLOYMENT_NAME",
                        "LISTEN_ADDR",
                        "DATABASE_URL",
                        "ORCHESTRATOR_LAUNCHER",
                        "RUNS_DIR",
                        "WORKLOAD_IMAGE",
                    ] {
                        assert!(
                            set.contains(name),
                            "{}: the orchestrator does not set {name}",
                            o.name
                        );
                    }
                }
            }
        }
        assert_eq!(
            seen,
            ["aggregator", "blog", "infer", "orchestrator", "worker"]
                .map(String::from)
                .into(),
            "{}: every workload of the binary is deployed",
            o.name
        );
        // What the launcher adds to the templates is read by the run's commands.
        let (aggregator, worker) = launcher_env(&o.templates);
        for (command, set) in [("aggregator", aggregator), ("worker", worker)] {
            let unknown: Vec<_> = set.difference(&read[command]).collect();
            assert!(
                unknown.is_empty(),
                "the launcher sets {unknown:?}, which `bloginfer {command}` does not read"
            );
        }
    }
}

#[test]
fn the_role_is_exactly_what_the_kubernetes_launcher_calls() {
    // (apiGroup, resource, resourceNames, verbs): see launcher/kubernetes.rs.
    let expected: BTreeSet<(String, String, Vec<String>, Vec<String>)> = [
        ("batch", "jobs", vec![], vec!["create", "delete", "get"]),
        ("", "services", vec![], vec!["create", "delete"]),
        ("apps", "deployments", vec!["inference"], vec!["patch"]),
    ]
    .into_iter()
    .map(|(g, r, n, v)| {
        (
            g.to_string(),
            r.to_string(),
            n.into_iter().map(String::from).collect(),
            v.into_iter().map(String::from).collect(),
        )
    })
    .collect();
    for o in overlays() {
        assert!(
            !o.docs
                .iter()
                .any(|d| d["kind"] == "ClusterRole" || d["kind"] == "ClusterRoleBinding"),
            "{}: cluster-wide RBAC",
            o.name
        );
        let roles: Vec<Role> = o.all("Role");
        assert_eq!(roles.len(), 1, "{}: one Role", o.name);
        let role = &roles[0];
        assert_eq!(role.metadata.namespace.as_deref(), Some(NAMESPACE));
        let mut rules = BTreeSet::new();
        for rule in role.rules.clone().unwrap_or_default() {
            for group in rule.api_groups.clone().unwrap_or_default() {
                for resource in rule.resources.clone().unwrap_or_default() {
                    let mut verbs = rule.verbs.clone();
                    verbs.sort();
                    rules.insert((
                        group.clone(),
                        resource,
                        rule.resource_names.clone().unwrap_or_default(),
                        verbs,
                    ));
                }
            }
        }
        assert_eq!(rules, expected, "{}: the Role's rules", o.name);
        let bindings: Vec<RoleBinding> = o.all("RoleBinding");
        assert_eq!(bindings.len(), 1);
        let binding = &bindings[0];
        assert_eq!(binding.role_ref.kind, "Role");
        assert_eq!(Some(binding.role_ref.name.clone()), role.metadata.name);
        let subjects = binding.subjects.clone().unwrap_or_default();
        assert_eq!(subjects.len(), 1);
        assert_eq!(subjects[0].kind, "ServiceAccount");
        assert_eq!(subjects[0].namespace.as_deref(), Some(NAMESPACE));
        // Only the orchestrator runs as that account and holds its token.
        for (where_, template, _) in o.pods() {
            let pod = template.spec.expect("pod");
            let is_orchestrator =
                pod.service_account_name.as_deref() == Some(subjects[0].name.as_str());
            assert_eq!(
                pod.automount_service_account_token,
                Some(is_orchestrator),
                "{}: {where_}",
                o.name
            );
            if is_orchestrator {
                assert_eq!(where_, "Deployment/orchestrator");
            }
        }
    }
}

fn sounds_secret(name: &str) -> bool {
    ["PASSWORD", "TOKEN", "SECRET", "KEY"]
        .iter()
        .any(|w| name.to_uppercase().contains(w))
}

#[test]
fn no_secret_value_is_written_into_a_manifest() {
    for o in overlays() {
        let secrets: BTreeSet<String> = o
            .docs
            .iter()
            .filter(|d| d["kind"] == "Secret")
            .map(|d| {
                d["metadata"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string()
            })
            .collect();
        // Secrets come only from the secretGenerator (a content hash in the name).
        for name in &secrets {
            let hash = name
                .strip_prefix("bloginfer-secrets-")
                .unwrap_or_else(|| panic!("{}: Secret {name} is not generated", o.name));
            assert!(
                hash.len() >= 8 && hash.chars().all(|c| c.is_ascii_alphanumeric()),
                "{name}"
            );
        }
        for (where_, template, _) in o.pods() {
            for c in containers(&template) {
                for e in c.env.clone().unwrap_or_default() {
                    let from_secret = e
                        .value_from
                        .as_ref()
                        .and_then(|v| v.secret_key_ref.as_ref());
                    if let Some(r) = from_secret {
                        assert!(
                            secrets.contains(&r.name),
                            "{}: {where_} reads Secret {}",
                            o.name,
                            r.name
                        );
                    }
                    // Names that look secret hold no literal (the file path variants are fine).
                    if sounds_secret(&e.name) && !e.name.ends_with("_FILE") {
                        assert!(
                            e.value.is_none() && from_secret.is_some(),
                            "{}: {where_} {} has a literal value",
                            o.name,
                            e.name
                        );
                    }
                    // No `user:password@` in a URL.
                    if let Some((_, rest)) = e.value.as_deref().and_then(|v| v.split_once("://")) {
                        let authority = rest.split('/').next().unwrap_or_default();
                        let userinfo = authority.rsplit_once('@').map(|(u, _)| u);
                        assert!(
                            !userinfo.is_some_and(|u| u.contains(':')),
                            "{}: {where_} {} carries a password in a URL",
                            o.name,
                            e.name
                        );
                    }
                }
            }
        }
    }
    // Nothing in the committed tree is a secrets file or a Secret object.
    let tracked = Command::new("git")
        .args(["ls-files", "deploy"])
        .current_dir(root())
        .output()
        .expect("git ls-files");
    let tracked = String::from_utf8_lossy(&tracked.stdout).to_string();
    assert!(!tracked.is_empty());
    for file in tracked.lines() {
        assert!(!file.ends_with("secrets.env"), "{file} is committed");
        if file.ends_with(".yaml") {
            let text = std::fs::read_to_string(root().join(file)).expect("read");
            assert!(
                !text.lines().any(|l| l.trim() == "kind: Secret"),
                "{file} holds a Secret"
            );
        }
    }
}
