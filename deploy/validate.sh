#!/usr/bin/env bash
# Validates what deploy/ holds, as far as this machine can without a container engine or a cluster:
#   1. wsgate check on the example production configuration and on the ConfigMap's configuration
#      (which must be the same text as deploy/kubernetes/wsgate.yaml);
#   2. systemd-analyze verify on the unit (and its security exposure, offline);
#   3. the Kubernetes manifests against the API's JSON schemas (kubernetes-validate, strict);
#   4. the container build file parsed (dockerfile-parse): multi-stage, static Swift stdlib, non-root;
#   5. the numbers that must agree: drain deadline < systemd stop timeout, preStop + drain <
#      terminationGracePeriodSeconds, probes on the admin port.
# Installs what it needs (Debian: systemd; PyPI: kubernetes-validate, dockerfile-parse, PyYAML).
# Usage: deploy/validate.sh [path to a built wsgate]   (default: builds it in .build/debug)
set -euo pipefail
cd "$(dirname "$0")/.."
export SWIFT_BACKTRACE=enable=no

# Network steps are retried (4 attempts, 5, 15 and 45 s apart): a mirror or PyPI failing once is not
# a failure of the code.
retry() {
    local attempt=1 delay=5
    until "$@"; do
        if [ "$attempt" -ge 4 ]; then return 1; fi
        echo "validate: attempt $attempt of 4 failed; again in ${delay} s: $*" >&2
        sleep "$delay"
        attempt=$((attempt + 1))
        delay=$((delay * 3))
    done
}
apt_options=(-o Acquire::Retries=3 -o DPkg::Lock::Timeout=300)
if ! command -v systemd-analyze >/dev/null 2>&1; then
    echo "validate: installing systemd (for systemd-analyze)"
    retry apt-get "${apt_options[@]}" update -qq
    DEBIAN_FRONTEND=noninteractive retry apt-get "${apt_options[@]}" install -y -qq systemd >/dev/null
fi
PIP_ROOT_USER_ACTION=ignore retry python3 -m pip install --quiet --disable-pip-version-check --retries 5 --timeout 60 \
    kubernetes-validate dockerfile-parse PyYAML

wsgate="${1:-}"
if [ -z "$wsgate" ]; then
    swift build --product wsgate >/dev/null
    wsgate="$(swift build --show-bin-path)/wsgate"
fi
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

echo "validate: 1. wsgate check"
"$wsgate" check -c deploy/config/wsgate.yaml
python3 - "$work/configmap-wsgate.yaml" <<'PY'
import sys, yaml
data = yaml.safe_load(open("deploy/kubernetes/configmap.yaml"))["data"]["wsgate.yaml"]
if data != open("deploy/kubernetes/wsgate.yaml").read():
    sys.exit("validate: deploy/kubernetes/configmap.yaml's wsgate.yaml differs from deploy/kubernetes/wsgate.yaml")
open(sys.argv[1], "w").write(data)
PY
"$wsgate" check -c "$work/configmap-wsgate.yaml"

echo "validate: 2. systemd-analyze verify"
# verify checks that ExecStart's binary exists: point a copy of the unit at the one just built.
sed "s|/usr/local/bin/wsgate|$(realpath "$wsgate")|g" deploy/systemd/wsgate.service > "$work/wsgate.service"
systemd-analyze verify "$work/wsgate.service"
systemd-analyze security --offline=yes --threshold=25 "$work/wsgate.service" | tail -n 1

echo "validate: 3. Kubernetes manifests (kubernetes-validate --strict)"
manifests=()
for file in deploy/kubernetes/*.yaml; do
    case "$(basename "$file")" in
    kustomization.yaml | wsgate.yaml) ;;  # not Kubernetes API objects
    *) manifests+=("$file") ;;
    esac
done
kubernetes-validate --strict "${manifests[@]}"

echo "validate: 4. container build file"
python3 - <<'PY'
import sys
from dockerfile_parse import DockerfileParser
parser = DockerfileParser(fileobj=open("deploy/container/Containerfile", "rb"))
instructions = parser.structure
froms = [i for i in instructions if i["instruction"] == "FROM"]
problems = []
if len(froms) < 2:
    problems.append("not a multi-stage build")
if not any(i["instruction"] == "RUN" and "--static-swift-stdlib" in i["value"] for i in instructions):
    problems.append("the release build does not use --static-swift-stdlib")
last_from = max(i["startline"] for i in froms)
final = [i for i in instructions if i["startline"] > last_from]
users = [i["value"].split(":")[0] for i in final if i["instruction"] == "USER"]
if not users or users[-1] in ("root", "0"):
    problems.append("the final stage does not switch to a non-root USER")
if not any(i["instruction"] == "COPY" and "--from=build" in i["value"] for i in final):
    problems.append("the final stage does not copy the binary from the build stage")
if problems:
    sys.exit("validate: deploy/container/Containerfile: " + "; ".join(problems))
print(f"Containerfile: {len(froms)} stages, final user {users[-1]}, static Swift stdlib")
PY

echo "validate: 5. numbers that must agree"
python3 - <<'PY'
import re, sys, yaml
def seconds(text):
    total = 0
    for value, unit in re.findall(r"(\d+)(ms|h|m|s)", text):
        total += int(value) * {"h": 3600, "m": 60, "s": 1, "ms": 0.001}[unit]
    return total
problems = []
host = yaml.safe_load(open("deploy/config/wsgate.yaml"))
kube = yaml.safe_load(open("deploy/kubernetes/wsgate.yaml"))
unit = open("deploy/systemd/wsgate.service").read()
stop = seconds(re.search(r"^TimeoutStopSec=(\S+)", unit, re.M).group(1))
drain_host = seconds(host.get("timeouts", {}).get("drain", "25s"))
if not drain_host < stop:
    problems.append(f"systemd TimeoutStopSec {stop}s is not longer than the drain ({drain_host}s)")
deployment = yaml.safe_load(open("deploy/kubernetes/deployment.yaml"))
pod = deployment["spec"]["template"]["spec"]
container = pod["containers"][0]
grace = pod["terminationGracePeriodSeconds"]
pre_stop = container["lifecycle"]["preStop"]["sleep"]["seconds"]
drain_kube = seconds(kube.get("timeouts", {}).get("drain", "25s"))
if not pre_stop + drain_kube < grace:
    problems.append(f"terminationGracePeriodSeconds {grace} is not above preStop {pre_stop}s + drain {drain_kube}s")
admin_port = int(kube["admin"]["address"].rsplit(":", 1)[1])
ports = {p["name"]: p["containerPort"] for p in container["ports"]}
for probe, path in (("readinessProbe", "/readyz"), ("livenessProbe", "/healthz")):
    get = container[probe]["httpGet"]
    port = ports.get(get["port"], get["port"])
    if port != admin_port or get["path"] != path:
        problems.append(f"{probe} is not {path} on the admin port {admin_port}")
if problems:
    sys.exit("validate: " + "; ".join(problems))
print(f"drain {drain_kube}s + preStop {pre_stop}s < grace {grace}s; systemd stop {stop}s > drain {drain_host}s; probes on admin port {admin_port}")
PY
echo "validate: deploy/ is valid"
