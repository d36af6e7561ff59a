#!/usr/bin/env bash
# Renders every kustomize overlay under deploy/k8s offline and validates the result, with
# no cluster: the Kubernetes 1.33 schemas (kubernetes-validate --strict) for the rendered
# objects and for the Job templates inside their ConfigMap, then the project's own rules
# (probes, resources, securityContext, selectors and ports, RBAC, env names, Secret keys).
#
#   bash scripts/check-manifests.sh [OUT_DIR]
#
# OUT_DIR (default: a new temporary directory) receives <overlay>.yaml and
# <overlay>.jobs/<template>.yaml for each overlay. The overlays' secrets.env files are not
# committed, so each is rendered from a copy of deploy/k8s with throwaway random secrets
# (an operator's real secrets.env is never read). Prints one line per overlay and exits
# non-zero if any overlay fails.
set -euo pipefail

K8S_VERSION=1.33
# kubernetes-validate and its dependencies, pinned: the schemas and their strictness are
# part of what this check asserts.
REQUIREMENTS="kubernetes-validate==1.33.1
attrs==26.1.0
importlib_resources==7.1.0
jsonschema==4.26.0
jsonschema-specifications==2025.9.1
packaging==26.4
PyYAML==6.0.4
referencing==0.37.0
rpds-py==2026.9.1
typing_extensions==4.16.0"

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
src="$root/deploy/k8s"
venv="${XDG_CACHE_HOME:-$HOME/.cache}/bloginfer/kv-venv"

command -v kubectl >/dev/null || { echo "check-manifests: kubectl is required" >&2; exit 2; }
command -v python3 >/dev/null || { echo "check-manifests: python3 is required" >&2; exit 2; }

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
if [ $# -ge 1 ]; then
    out="$1"
else
    out="$(mktemp -d "${TMPDIR:-/tmp}/bloginfer-manifests.XXXXXX")"
fi
mkdir -p "$out"
out="$(cd "$out" && pwd)"

# A throwaway virtualenv, reused while its pinned requirements are unchanged.
if [ ! -x "$venv/bin/kubernetes-validate" ] || [ "$(cat "$venv/.requirements" 2>/dev/null)" != "$REQUIREMENTS" ]; then
    rm -rf "$venv"
    mkdir -p "$(dirname "$venv")"
    python3 -m venv "$venv"
    printf '%s\n' "$REQUIREMENTS" > "$work/requirements.txt"
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-input \
        -r "$work/requirements.txt" >&2
    printf '%s' "$REQUIREMENTS" > "$venv/.requirements"
fi

cp -R "$src" "$work/k8s"

cat > "$work/policy.py" <<'PY'
"""Project rules for one rendered overlay; extracts the Job templates as a side effect.

usage: policy.py RENDERED.yaml SECRET_KEYS_FILE JOBS_DIR
Prints one problem per line and exits 1 if there is any; prints the object and template
counts ("objects templates") on success.
"""
import sys
from pathlib import Path

import yaml

rendered, keys_file, jobs_dir = sys.argv[1], sys.argv[2], Path(sys.argv[3])
docs = [d for d in yaml.safe_load_all(open(rendered)) if d]
secret_keys = {line.strip() for line in open(keys_file) if line.strip()}
problems = []


def problem(where, what):
    problems.append(f"{where}: {what}")


NAMESPACE = "bloginfer"
COMMON = {"app.kubernetes.io/name": "bloginfer", "app.kubernetes.io/part-of": "bloginfer"}
CLUSTER_SCOPED = {"Namespace", "PersistentVolume"}

# The env contract of the binary (required, optional) per container; MySQL's containers
# use the images' own variables and are not listed.
ENV = {
    "blog": (
        {"LISTEN_ADDR", "DATABASE_URL", "DATABASE_PASSWORD", "JWT_SECRET",
         "REDIS_URL", "INFERENCE_URL", "BLOG_BEHIND_PROXY"},
        {"REDIS_PREFIX", "INFERENCE_TIMEOUT", "BLOG_PAGE_CACHE", "LOGIN_ATTEMPTS_PER_IP",
         "LOGIN_FAILURES_PER_ACCOUNT", "ACCOUNT_WRITES_PER_IP", "RUST_LOG"},
    ),
    "inference": (
        {"LISTEN_ADDR", "MODEL_DIR"},
        {"MODEL_VERSION", "INFER_MAX_BATCH", "INFER_MAX_WAIT", "INFER_QUEUE_CAPACITY",
         "INFER_COMPUTE_WORKERS", "INFER_RELOAD_INTERVAL", "INFER_MAX_BODY_KIB",
         "INFER_QUEUE_MIB", "BLOGINFER_THREADS", "RUST_LOG"},
    ),
    "orchestrator": (
        {"LISTEN_ADDR", "NAMESPACE", "MODEL_DIR", "RUNS_DIR", "DATABASE_URL",
         "DATABASE_PASSWORD", "ADMIN_TOKEN", "BLOG_URL", "ORCHESTRATOR_LAUNCHER",
         "TRAIN_JOB_YAML", "AGG_JOB_YAML", "INFERENCE_DEPLOYMENT_NAME", "WORKLOAD_IMAGE"},
        {"MIN_TRAIN_INTERVAL_SECONDS", "TRAIN_POLL_INTERVAL_SECONDS", "CLEAN_INTERVAL_SECONDS",
         "MAX_CLIENT_MODEL_AGE_SECONDS", "TRAIN_WORKERS", "TRAIN_ROUNDS", "KEEP_MODELS",
         "PROMOTION_MARGIN", "LLM_BASE_URL", "LLM_MODEL", "LLM_API_KEY", "LLM_TIMEOUT_SECONDS",
         "LLM_MAX_RETRIES", "LLM_REQUESTS_PER_MINUTE", "LLM_BATCH_SIZE", "LLM_JSON_MODE",
         "LABELER_ENABLED", "LABELER_POLL_INTERVAL_SECONDS", "LABELER_MAX_ATTEMPTS",
         "LABELER_RETRY_SECONDS", "FEEDBACK_MIN_CONFIDENCE_LLM", "FEEDBACK_MIN_CONFIDENCE_PSEUDO",
         "FEEDBACK_HOLD_DISAGREEMENTS", "FEEDBACK_DISAGREEMENT_CONFIDENCE",
         "FEEDBACK_MAX_PER_AUTHOR", "FEEDBACK_MAX_CLASS_RATIO", "ORCHESTRATOR_BEHIND_PROXY",
         "FEEDBACK_MAX_AUTHOR_CORRECTIONS_PER_DAY", "LLM_MAX_PAUSE_SECONDS", "LABELER_STALL_SECONDS",
         "RUST_LOG"},
    ),
    "aggregator": (set(), {"RUST_LOG", "BLOGINFER_THREADS"}),
    "worker": (set(), {"RUST_LOG", "BLOGINFER_THREADS"}),
    "web-assets": (set(), set()),
}

ROLE_RULES = sorted([
    (("batch",), ("jobs",), (), ("create", "delete", "get")),
    (("",), ("services",), (), ("create", "delete")),
    (("apps",), ("deployments",), ("inference",), ("patch",)),
])


def name_of(doc):
    return f"{doc.get('kind')}/{doc.get('metadata', {}).get('name')}"


by_kind = {}
for doc in docs:
    by_kind.setdefault(doc["kind"], []).append(doc)


def named(kind, name):
    return next((d for d in by_kind.get(kind, []) if d["metadata"]["name"] == name), None)


# --- the Job templates, checked like the other workloads -------------------------------
templates = {}
jobs_dir.mkdir(parents=True, exist_ok=True)
cms = [c for c in by_kind.get("ConfigMap", [])
       if c["metadata"]["name"].startswith("bloginfer-job-templates")]
if len(cms) != 1:
    problem("ConfigMap/bloginfer-job-templates", f"expected exactly one, found {len(cms)}")
else:
    data = cms[0].get("data", {})
    for key in ("aggregator-job.yaml", "worker-job.yaml"):
        if key not in data:
            problem(name_of(cms[0]), f"missing key {key}")
            continue
        (jobs_dir / key).write_text(data[key])
        job = yaml.safe_load(data[key])
        templates[key] = job
        if job.get("kind") != "Job" or job.get("apiVersion") != "batch/v1":
            problem(f"template {key}", "is not a batch/v1 Job")

# --- every pod spec -------------------------------------------------------------------
pods = []  # (where, labels, spec, owner kind)
for kind in ("Deployment", "StatefulSet"):
    for doc in by_kind.get(kind, []):
        tmpl = doc["spec"]["template"]
        pods.append((name_of(doc), tmpl["metadata"].get("labels", {}), tmpl["spec"], doc))
        sel = doc["spec"].get("selector", {}).get("matchLabels", {})
        if not sel or any(tmpl["metadata"].get("labels", {}).get(k) != v for k, v in sel.items()):
            problem(name_of(doc), "selector does not match the pod template labels")
for key, job in templates.items():
    tmpl = job["spec"]["template"]
    pods.append((f"template {key}", tmpl["metadata"].get("labels", {}), tmpl["spec"], job))


def named_ports(container):
    return {p.get("name"): p["containerPort"] for p in container.get("ports", [])}


def check_probe_port(where, container, probe):
    for handler in ("httpGet", "tcpSocket", "grpc"):
        if handler in probe:
            port = probe[handler]["port"]
            ports = named_ports(container)
            if isinstance(port, str) and port not in ports:
                problem(where, f"probe port {port!r} is not a container port")
            if isinstance(port, int) and port not in ports.values():
                problem(where, f"probe port {port} is not a container port")


orchestrator_image = None
for where, labels, spec, owner in pods:
    component = labels.get("app.kubernetes.io/component")
    if not component:
        problem(where, "pod template has no app.kubernetes.io/component label")
    for k, v in COMMON.items():
        if labels.get(k) != v:
            problem(where, f"pod template label {k} is not {v}")
    psc = spec.get("securityContext", {})
    if psc.get("seccompProfile", {}).get("type") != "RuntimeDefault":
        problem(where, "pod seccompProfile is not RuntimeDefault")
    is_orchestrator = component == "orchestrator"
    if spec.get("automountServiceAccountToken") is not is_orchestrator:
        problem(where, f"automountServiceAccountToken must be {is_orchestrator}")
    if is_orchestrator != (spec.get("serviceAccountName") == "bloginfer-orchestrator"):
        problem(where, "only the orchestrator uses the bloginfer-orchestrator ServiceAccount")
    if spec.get("enableServiceLinks") is not False:
        problem(where, "enableServiceLinks must be false")
    volumes = {v["name"]: v for v in spec.get("volumes", [])}
    claim_templates = {t["metadata"]["name"] for t in owner.get("spec", {}).get("volumeClaimTemplates", [])}
    for init, containers in ((True, spec.get("initContainers", [])), (False, spec["containers"])):
        for c in containers:
            cw = f"{where} container {c['name']}"
            sc = c.get("securityContext", {})
            if sc.get("allowPrivilegeEscalation") is not False:
                problem(cw, "allowPrivilegeEscalation must be false")
            if sc.get("capabilities", {}).get("drop") != ["ALL"]:
                problem(cw, "capabilities must drop ALL")
            if sc.get("readOnlyRootFilesystem") is not True:
                problem(cw, "readOnlyRootFilesystem must be true")
            if not (sc.get("runAsNonRoot", psc.get("runAsNonRoot")) is True):
                problem(cw, "runAsNonRoot must be true")
            if not sc.get("runAsUser", psc.get("runAsUser")):
                problem(cw, "needs a non-root runAsUser")
            res = c.get("resources", {})
            for part in ("requests", "limits"):
                for r in ("cpu", "memory"):
                    if r not in res.get(part, {}):
                        problem(cw, f"resources.{part}.{r} missing")
            if not init:
                for probe in ("livenessProbe", "readinessProbe"):
                    if probe not in c:
                        problem(cw, f"{probe} missing")
            for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
                if probe in c:
                    check_probe_port(cw, c, c[probe])
            for m in c.get("volumeMounts", []):
                if m["name"] not in volumes and m["name"] not in claim_templates:
                    problem(cw, f"mounts undeclared volume {m['name']}")
            env = {e["name"]: e for e in c.get("env", [])}
            contract = ENV.get(c["name"])
            if contract is not None:
                required, optional = contract
                for missing in sorted(required - env.keys()):
                    problem(cw, f"required env {missing} not set")
                for extra in sorted(env.keys() - required - optional):
                    problem(cw, f"env {extra} is not in the binary's contract")
            for e in env.values():
                ref = e.get("valueFrom", {}).get("secretKeyRef")
                if ref and ref["key"] not in secret_keys:
                    problem(cw, f"env {e['name']} reads unknown Secret key {ref['key']}")
            image = c.get("image", "")
            if owner.get("kind") != "Job":
                if ":" not in image.rsplit("/", 1)[-1] and "@" not in image:
                    problem(cw, f"image {image!r} has no tag (did the overlay's images: apply?)")
                if image.endswith(":latest"):
                    problem(cw, "image uses the latest tag")
            if c["name"] == "orchestrator":
                orchestrator_image = image
                if env.get("WORKLOAD_IMAGE", {}).get("value") != image:
                    problem(cw, f"WORKLOAD_IMAGE {env.get('WORKLOAD_IMAGE', {}).get('value')!r} "
                                f"is not the container's image {image!r}")
                mounts = {m["mountPath"]: m for m in c.get("volumeMounts", [])}
                for var in ("TRAIN_JOB_YAML", "AGG_JOB_YAML"):
                    path = env.get(var, {}).get("value", "")
                    directory, _, key = path.rpartition("/")
                    mount = mounts.get(directory)
                    cm = volumes.get(mount["name"], {}).get("configMap") if mount else None
                    if not cm or not cm["name"].startswith("bloginfer-job-templates") \
                            or key not in templates:
                        problem(cw, f"{var}={path} is not a mounted job template")
    for v in volumes.values():
        if "configMap" in v and not named("ConfigMap", v["configMap"]["name"]):
            problem(where, f"volume {v['name']} refers to a missing ConfigMap")
        if "secret" in v:
            s = named("Secret", v["secret"]["secretName"])
            if not s:
                problem(where, f"volume {v['name']} refers to a missing Secret")
            for item in v["secret"].get("items", []):
                if item["key"] not in secret_keys:
                    problem(where, f"volume {v['name']} reads unknown Secret key {item['key']}")
        pvc = v.get("persistentVolumeClaim")
        if pvc and not named("PersistentVolumeClaim", pvc["claimName"]):
            problem(where, f"volume {v['name']} refers to a missing PersistentVolumeClaim")
    for c in spec["containers"]:
        for e in c.get("env", []):
            ref = e.get("valueFrom", {}).get("secretKeyRef")
            if ref and not named("Secret", ref["name"]):
                problem(f"{where} container {c['name']}", f"Secret {ref['name']} not rendered")

# --- Services select pods and reach their ports ---------------------------------------
for svc in by_kind.get("Service", []):
    sel = svc["spec"].get("selector", {})
    matches = [(w, s) for w, labels, s, owner in pods
               if owner.get("kind") != "Job" and sel and all(labels.get(k) == v for k, v in sel.items())]
    if not matches:
        problem(name_of(svc), f"selector {sel} matches no pod template")
        continue
    for port in svc["spec"]["ports"]:
        target = port.get("targetPort", port["port"])
        for w, s in matches:
            ports = {}
            for c in s["containers"]:
                ports.update(named_ports(c))
            if (isinstance(target, str) and target not in ports) or \
                    (isinstance(target, int) and target not in ports.values()):
                problem(name_of(svc), f"targetPort {target!r} is not a port of {w}")

# --- namespace, labels, RBAC ------------------------------------------------------------
for doc in docs:
    meta = doc["metadata"]
    if doc["kind"] not in CLUSTER_SCOPED and meta.get("namespace") != NAMESPACE:
        problem(name_of(doc), f"not in namespace {NAMESPACE}")
    for k, v in COMMON.items():
        if meta.get("labels", {}).get(k) != v:
            problem(name_of(doc), f"label {k} is not {v}")
    if doc["kind"] in ("ClusterRole", "ClusterRoleBinding"):
        problem(name_of(doc), "cluster-wide RBAC is not allowed")

roles = by_kind.get("Role", [])
if [r["metadata"]["name"] for r in roles] != ["bloginfer-orchestrator"]:
    problem("Role", "expected exactly the Role bloginfer-orchestrator")
for role in roles:
    rules = sorted(
        (tuple(r.get("apiGroups", [])), tuple(r.get("resources", [])),
         tuple(r.get("resourceNames", [])), tuple(sorted(r.get("verbs", []))))
        for r in role.get("rules", []))
    if rules != ROLE_RULES:
        problem(name_of(role), f"rules differ from the least-privilege set: {rules}")

if not any(p["spec"].get("podSelector") == {} and "Ingress" in p["spec"].get("policyTypes", [])
           and not p["spec"].get("ingress") for p in by_kind.get("NetworkPolicy", [])):
    problem("NetworkPolicy", "no default-deny ingress policy")

if orchestrator_image is None:
    problem("Deployment/orchestrator", "missing")

if problems:
    print("\n".join(problems))
    sys.exit(1)
print(len(docs), len(templates))
PY

failed=0
passed=0
for dir in "$work"/k8s/overlays/*/; do
    env="$(basename "$dir")"
    [ -f "$dir/kustomization.yaml" ] || continue
    log="$work/$env.log"
    # Throwaway values for every key the example lists; never the operator's real file.
    sed -n 's/^\([A-Za-z0-9_.-]*\)=.*$/\1/p' "$dir/secrets.env.example" > "$work/$env.keys"
    while read -r key; do
        printf '%s=%s\n' "$key" "$(od -vAn -N24 -tx1 /dev/urandom | tr -d ' \n')"
    done < "$work/$env.keys" > "$dir/secrets.env"
    rm -rf "$out/$env.jobs"
    if ! kubectl kustomize "$dir" > "$out/$env.yaml" 2> "$log"; then
        echo "$env: FAIL: kubectl kustomize"
        sed 's/^/    /' "$log"
        failed=$((failed + 1))
        continue
    fi
    # Both checks run, so that one pass reports every problem; the rules also extract the
    # Job templates that the schema check reads.
    rules_ok=true
    counts="$("$venv/bin/python" "$work/policy.py" "$out/$env.yaml" "$work/$env.keys" "$out/$env.jobs" 2>&1)" \
        || rules_ok=false
    schema_ok=true
    "$venv/bin/kubernetes-validate" --strict --kubernetes-version "$K8S_VERSION" --quiet \
        "$out/$env.yaml" "$out/$env.jobs"/*.yaml > "$log" 2>&1 || schema_ok=false
    if ! $schema_ok || ! $rules_ok; then
        echo "$env: FAIL"
        if ! $schema_ok; then
            echo "  kubernetes-validate --strict --kubernetes-version $K8S_VERSION:"
            sed 's/^/    /' "$log"
        fi
        if ! $rules_ok; then
            echo "  project rules:"
            printf '%s\n' "$counts" | sed 's/^/    /'
        fi
        failed=$((failed + 1))
        continue
    fi
    read -r objects templates <<< "$counts"
    echo "$env: ok ($objects objects and $templates Job templates valid for Kubernetes $K8S_VERSION, project rules hold) -> $out/$env.yaml"
    passed=$((passed + 1))
done

if [ $((passed + failed)) -eq 0 ]; then
    echo "check-manifests: no overlay found under $src/overlays" >&2
    exit 1
fi
echo "manifests: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
