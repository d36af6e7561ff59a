//! The Kubernetes launcher: per run, an aggregator Job, a Service in front of
//! it, and an Indexed worker Job (`completions = parallelism = N`, the shard is
//! `JOB_COMPLETION_INDEX`), all rendered from the operator's Job templates
//! (`AGG_JOB_YAML`, `TRAIN_JOB_YAML`) and labelled with the run id. The Service
//! and the worker Job are owned by the aggregator Job, so deleting it (or its
//! `ttlSecondsAfterFinished`) takes them along. A run is followed through the
//! Jobs' conditions; inference is rolled out by patching its Deployment's
//! pod-template annotation, which starts a rolling update.
//!
//! The verbs used are exactly the Role's: jobs create/get/delete, services
//! create/get/delete, the inference Deployment get/patch.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{
    Container, ContainerPort, EnvVar, Service, ServicePort, ServiceSpec,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams, PropagationPolicy};
use kube::Client;

use super::{BoxFuture, Launcher, Observed, RunPlan};
use crate::error::{OrchestratorError, Result};

/// The port the aggregator listens on inside its pod.
pub const AGGREGATOR_PORT: i32 = 7000;
/// The label every object of a run carries.
pub const RUN_LABEL: &str = "bloginfer.io/run-id";
/// The pod-template annotation whose change rolls inference.
pub const MODEL_ANNOTATION: &str = "bloginfer.io/model-version";
/// Where a worker pod finds its own shard folder (the template mounts it there).
pub const SHARD_MOUNT: &str = "/shard";

/// How long a finished run's Jobs stay, unless the template says otherwise.
const DEFAULT_TTL_SECONDS: i32 = 3600;

/// Settings of the Kubernetes launcher.
#[derive(Clone)]
pub struct KubernetesSettings {
    /// The namespace runs are created in.
    pub namespace: String,
    /// The Job each run's aggregator is made from; the launcher fills in name, labels,
    /// image, arguments and environment.
    pub aggregator_template: Job,
    /// The Job each run's workers are made from, one indexed completion per worker;
    /// filled in like the aggregator's.
    pub worker_template: Job,
    /// The image to run (the orchestrator's own); `None` keeps the templates'.
    pub image: Option<String>,
    /// The inference Deployment to roll.
    pub inference_deployment: String,
}

/// Creates runs as Jobs through the Kubernetes API.
pub struct KubernetesLauncher {
    client: Client,
    settings: KubernetesSettings,
}

fn kube_error(what: &str, e: kube::Error) -> OrchestratorError {
    OrchestratorError::Kubernetes(format!("{what}: {e}"))
}

fn status_code(e: &kube::Error) -> Option<u16> {
    match e {
        kube::Error::Api(status) => Some(status.code),
        _ => None,
    }
}

/// Reads a Job template (YAML or JSON) and checks that it can be filled in.
pub fn load_template(path: &Path) -> Result<Job> {
    let raw = std::fs::read_to_string(path)
        .map_err(|e| OrchestratorError::io(format!("cannot read {}", path.display()), e))?;
    let job: Job = serde_saphyr::from_str(&raw).map_err(|e| {
        OrchestratorError::Config(format!("{} is not a Job manifest: {e}", path.display()))
    })?;
    check_template(&job)
        .map_err(|m| OrchestratorError::Config(format!("{}: {m}", path.display())))?;
    Ok(job)
}

fn check_template(job: &Job) -> Result<(), String> {
    let containers = job
        .spec
        .as_ref()
        .and_then(|s| s.template.spec.as_ref())
        .map(|p| p.containers.len())
        .unwrap_or(0);
    if containers != 1 {
        return Err(format!(
            "the pod template needs exactly one container, not {containers}"
        ));
    }
    Ok(())
}

/// The aggregator Job's (and Service's) name for a run.
pub fn aggregator_name(run_id: &str) -> String {
    format!("bloginfer-agg-{run_id}")
}

/// The worker Job's name for a run.
pub fn workers_name(run_id: &str) -> String {
    format!("bloginfer-workers-{run_id}")
}

fn labels(run_id: &str, component: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (
            "app.kubernetes.io/name".to_string(),
            "bloginfer".to_string(),
        ),
        (
            "app.kubernetes.io/component".to_string(),
            component.to_string(),
        ),
        (
            "app.kubernetes.io/managed-by".to_string(),
            "bloginfer-orchestrator".to_string(),
        ),
        (RUN_LABEL.to_string(), run_id.to_string()),
    ])
}

fn env(name: &str, value: impl Into<String>) -> EnvVar {
    EnvVar {
        name: name.to_string(),
        value: Some(value.into()),
        value_from: None,
    }
}

fn owned_by(job: &Job) -> Option<Vec<OwnerReference>> {
    Some(vec![OwnerReference {
        api_version: "batch/v1".into(),
        kind: "Job".into(),
        name: job.metadata.name.clone()?,
        uid: job.metadata.uid.clone()?,
        controller: Some(false),
        block_owner_deletion: Some(false),
    }])
}

/// Fills `template` in for one run: name, labels, image, args, env; the
/// template keeps everything else (resources, security, volumes).
fn fill(
    template: &Job,
    name: String,
    namespace: &str,
    labels: BTreeMap<String, String>,
    image: Option<&str>,
    args: Vec<String>,
    env_vars: Vec<EnvVar>,
) -> Result<Job> {
    let mut job = template.clone();
    job.metadata.name = Some(name);
    job.metadata.namespace = Some(namespace.to_string());
    job.metadata.generate_name = None;
    job.metadata
        .labels
        .get_or_insert_with(BTreeMap::new)
        .extend(labels.clone());
    let spec = job
        .spec
        .as_mut()
        .ok_or_else(|| OrchestratorError::Config("the Job template has no spec".into()))?;
    spec.ttl_seconds_after_finished
        .get_or_insert(DEFAULT_TTL_SECONDS);
    spec.selector = None;
    spec.template
        .metadata
        .get_or_insert_with(Default::default)
        .labels
        .get_or_insert_with(BTreeMap::new)
        .extend(labels);
    let pod = spec
        .template
        .spec
        .as_mut()
        .ok_or_else(|| OrchestratorError::Config("the Job template has no pod spec".into()))?;
    let container: &mut Container = pod
        .containers
        .first_mut()
        .ok_or_else(|| OrchestratorError::Config("the Job template has no container".into()))?;
    if let Some(image) = image {
        container.image = Some(image.to_string());
    }
    container.command = None;
    container.args = Some(args);
    let list = container.env.get_or_insert_with(Vec::new);
    list.retain(|e| !env_vars.iter().any(|n| n.name == e.name));
    list.extend(env_vars);
    Ok(job)
}

impl KubernetesLauncher {
    /// A launcher on `client` (in-cluster: `Client::try_default()`).
    pub fn new(client: Client, settings: KubernetesSettings) -> Result<Self> {
        check_template(&settings.aggregator_template)
            .and_then(|_| check_template(&settings.worker_template))
            .map_err(OrchestratorError::Config)?;
        Ok(Self { client, settings })
    }

    fn jobs(&self) -> Api<Job> {
        Api::namespaced(self.client.clone(), &self.settings.namespace)
    }

    fn services(&self) -> Api<Service> {
        Api::namespaced(self.client.clone(), &self.settings.namespace)
    }

    /// The aggregator Job of `plan`.
    pub fn aggregator_job(&self, plan: &RunPlan) -> Result<Job> {
        // Everything about the run is in its directory's run.json.
        let args = vec!["aggregator".to_string()];
        let vars = vec![
            env("LISTEN_ADDR", format!("0.0.0.0:{AGGREGATOR_PORT}")),
            env("FL_RUN_DIR", plan.dir.display().to_string()),
            env("MODEL_DIR", plan.models_dir.display().to_string()),
        ];
        let mut job = fill(
            &self.settings.aggregator_template,
            aggregator_name(&plan.run_id),
            &self.settings.namespace,
            labels(&plan.run_id, "aggregator"),
            self.settings.image.as_deref(),
            args,
            vars,
        )?;
        if let Some(c) = job
            .spec
            .as_mut()
            .and_then(|s| s.template.spec.as_mut())
            .and_then(|p| p.containers.first_mut())
        {
            let ports = c.ports.get_or_insert_with(Vec::new);
            if !ports.iter().any(|p| p.container_port == AGGREGATOR_PORT) {
                ports.push(ContainerPort {
                    name: Some("fl".into()),
                    container_port: AGGREGATOR_PORT,
                    protocol: Some("TCP".into()),
                    ..Default::default()
                });
            }
        }
        Ok(job)
    }

    /// The Service in front of the aggregator, owned by its Job.
    pub fn aggregator_service(&self, plan: &RunPlan, owner: &Job) -> Service {
        let name = aggregator_name(&plan.run_id);
        let mut selector = BTreeMap::new();
        selector.insert(RUN_LABEL.to_string(), plan.run_id.clone());
        selector.insert(
            "app.kubernetes.io/component".to_string(),
            "aggregator".to_string(),
        );
        Service {
            metadata: kube::api::ObjectMeta {
                name: Some(name),
                namespace: Some(self.settings.namespace.clone()),
                labels: Some(labels(&plan.run_id, "aggregator")),
                owner_references: owned_by(owner),
                ..Default::default()
            },
            spec: Some(ServiceSpec {
                selector: Some(selector),
                ports: Some(vec![ServicePort {
                    name: Some("fl".into()),
                    port: AGGREGATOR_PORT,
                    target_port: Some(IntOrString::Int(AGGREGATOR_PORT)),
                    protocol: Some("TCP".into()),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
            status: None,
        }
    }

    /// The Indexed worker Job of `plan`, owned by the aggregator Job.
    pub fn worker_job(&self, plan: &RunPlan, owner: &Job) -> Result<Job> {
        let url = format!(
            "http://{}.{}.svc:{AGGREGATOR_PORT}",
            aggregator_name(&plan.run_id),
            self.settings.namespace
        );
        // The pod mounts its own worker folder (identity, shard, token) at
        // SHARD_MOUNT; the template's mount path names the run by FL_RUN_ID.
        let vars = vec![
            env("FL_AGGREGATOR_URL", url),
            env("FL_RUN_ID", plan.run_id.clone()),
            env("FL_WORKER_DIR", SHARD_MOUNT.to_string()),
        ];
        let mut job = fill(
            &self.settings.worker_template,
            workers_name(&plan.run_id),
            &self.settings.namespace,
            labels(&plan.run_id, "worker"),
            self.settings.image.as_deref(),
            vec!["worker".to_string()],
            vars,
        )?;
        job.metadata.owner_references = owned_by(owner);
        let n = i32::try_from(plan.workers)
            .map_err(|_| OrchestratorError::Config("too many workers".into()))?;
        if let Some(spec) = job.spec.as_mut() {
            spec.completions = Some(n);
            spec.parallelism = Some(n);
            spec.completion_mode = Some("Indexed".into());
        }
        Ok(job)
    }

    /// Creates `job`, or takes the one of this run that already exists (a
    /// restart between creating and recording it).
    async fn create_job(&self, job: &Job, run_id: &str) -> Result<Job> {
        let name = job.metadata.name.clone().unwrap_or_default();
        match self.jobs().create(&PostParams::default(), job).await {
            Ok(created) => Ok(created),
            Err(e) if status_code(&e) == Some(409) => {
                let existing = self
                    .jobs()
                    .get(&name)
                    .await
                    .map_err(|e| kube_error(&format!("reading Job {name}"), e))?;
                let owner = existing
                    .metadata
                    .labels
                    .as_ref()
                    .and_then(|l| l.get(RUN_LABEL));
                if owner.map(String::as_str) != Some(run_id) {
                    return Err(OrchestratorError::Kubernetes(format!(
                        "Job {name} exists and belongs to another run"
                    )));
                }
                Ok(existing)
            }
            Err(e) => Err(kube_error(&format!("creating Job {name}"), e)),
        }
    }

    async fn create_service(&self, service: &Service) -> Result<()> {
        let name = service.metadata.name.clone().unwrap_or_default();
        match self
            .services()
            .create(&PostParams::default(), service)
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if status_code(&e) == Some(409) => Ok(()),
            Err(e) => Err(kube_error(&format!("creating Service {name}"), e)),
        }
    }

    async fn start_run(&self, plan: &RunPlan) -> Result<serde_json::Value> {
        let aggregator = self
            .create_job(&self.aggregator_job(plan)?, &plan.run_id)
            .await?;
        self.create_service(&self.aggregator_service(plan, &aggregator))
            .await?;
        let workers = self
            .create_job(&self.worker_job(plan, &aggregator)?, &plan.run_id)
            .await?;
        // An API server that does not know Indexed Jobs drops the field and would
        // run N interchangeable pods that all read shard 0.
        let indexed = workers
            .spec
            .as_ref()
            .and_then(|s| s.completion_mode.as_deref());
        if indexed != Some("Indexed") {
            let _ = self.delete_jobs(plan).await;
            return Err(OrchestratorError::Kubernetes(format!(
                "the API server created the worker Job with completionMode {indexed:?}, not Indexed"
            )));
        }
        Ok(serde_json::json!({
            "namespace": self.settings.namespace,
            "aggregator_job": aggregator_name(&plan.run_id),
            "worker_job": workers_name(&plan.run_id),
        }))
    }

    async fn delete_jobs(&self, plan: &RunPlan) -> Result<()> {
        let params = DeleteParams {
            propagation_policy: Some(PropagationPolicy::Background),
            ..Default::default()
        };
        for name in [workers_name(&plan.run_id), aggregator_name(&plan.run_id)] {
            match self.jobs().delete(&name, &params).await {
                Ok(_) => {}
                Err(e) if status_code(&e) == Some(404) => {}
                Err(e) => return Err(kube_error(&format!("deleting Job {name}"), e)),
            }
        }
        let name = aggregator_name(&plan.run_id);
        match self
            .services()
            .delete(&name, &DeleteParams::default())
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if status_code(&e) == Some(404) => Ok(()),
            Err(e) => Err(kube_error(&format!("deleting Service {name}"), e)),
        }
    }

    /// `Complete` or `Failed` (with its reason) from a Job's conditions.
    fn outcome(job: &Job) -> Option<Result<(), String>> {
        let conditions = job.status.as_ref()?.conditions.as_ref()?;
        for c in conditions {
            if c.status != "True" {
                continue;
            }
            match c.type_.as_str() {
                "Complete" => return Some(Ok(())),
                "Failed" => {
                    let why = [c.reason.as_deref(), c.message.as_deref()]
                        .into_iter()
                        .flatten()
                        .collect::<Vec<_>>()
                        .join(": ");
                    return Some(Err(why));
                }
                _ => {}
            }
        }
        None
    }

    async fn observe_run(&self, plan: &RunPlan) -> Result<Observed> {
        let name = aggregator_name(&plan.run_id);
        let aggregator = match self.jobs().get(&name).await {
            Ok(job) => job,
            Err(e) if status_code(&e) == Some(404) => {
                return Ok(Observed::Failed(format!(
                    "the aggregator Job {name} is gone"
                )))
            }
            Err(e) => return Err(kube_error(&format!("reading Job {name}"), e)),
        };
        match Self::outcome(&aggregator) {
            Some(Ok(())) => return Ok(Observed::Finished),
            Some(Err(why)) => return Ok(Observed::Failed(format!("the aggregator failed: {why}"))),
            None => {}
        }
        let name = workers_name(&plan.run_id);
        match self.jobs().get(&name).await {
            Ok(job) => {
                if let Some(Err(why)) = Self::outcome(&job) {
                    return Ok(Observed::Failed(format!("the workers failed: {why}")));
                }
            }
            // Workers that all finished may be cleaned up before the aggregator.
            Err(e) if status_code(&e) == Some(404) => {}
            Err(e) => return Err(kube_error(&format!("reading Job {name}"), e)),
        }
        Ok(Observed::Running)
    }

    /// Patches the inference Deployment's pod template with `version`.
    pub async fn roll_inference(&self, version: &str) -> Result<()> {
        let api: Api<Deployment> = Api::namespaced(self.client.clone(), &self.settings.namespace);
        let patch = serde_json::json!({
            "spec": {"template": {"metadata": {"annotations": {MODEL_ANNOTATION: version}}}}
        });
        let name = &self.settings.inference_deployment;
        let mut last = None;
        for attempt in 0..3u32 {
            match api
                .patch(name, &PatchParams::default(), &Patch::Strategic(&patch))
                .await
            {
                Ok(_) => return Ok(()),
                Err(e) if matches!(status_code(&e), Some(code) if code >= 500 || code == 409 || code == 429) =>
                {
                    tracing::warn!(attempt, "patching Deployment {name} failed, retrying: {e}");
                    last = Some(e);
                    tokio::time::sleep(Duration::from_millis(200 << attempt)).await;
                }
                Err(e) => return Err(kube_error(&format!("patching Deployment {name}"), e)),
            }
        }
        Err(match last {
            Some(e) => kube_error(&format!("patching Deployment {name}"), e),
            None => OrchestratorError::Kubernetes(format!("patching Deployment {name} failed")),
        })
    }
}

impl Launcher for KubernetesLauncher {
    fn name(&self) -> &'static str {
        "kubernetes"
    }

    fn start<'a>(&'a self, plan: &'a RunPlan) -> BoxFuture<'a, Result<serde_json::Value>> {
        Box::pin(self.start_run(plan))
    }

    fn observe<'a>(
        &'a self,
        plan: &'a RunPlan,
        _handle: &'a serde_json::Value,
    ) -> BoxFuture<'a, Result<(Observed, Option<serde_json::Value>)>> {
        Box::pin(async move { Ok((self.observe_run(plan).await?, None)) })
    }

    fn stop<'a>(
        &'a self,
        plan: &'a RunPlan,
        _handle: &'a serde_json::Value,
    ) -> BoxFuture<'a, Result<()>> {
        Box::pin(self.delete_jobs(plan))
    }

    fn roll_out<'a>(&'a self, version: &'a str) -> BoxFuture<'a, Result<()>> {
        Box::pin(self.roll_inference(version))
    }
}
