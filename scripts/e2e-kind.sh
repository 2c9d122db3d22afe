#!/usr/bin/env bash
# End to end on kind, one command: a kind cluster with kind's local registry, `pulumi up` of the `local` stack
# (which builds the controller image and pushes it to that registry), an Ingress of class `tyk` served through
# the gateways' LoadBalancer (cloud-provider-kind), the API of definitions/ called with a key from its policy,
# then `pulumi destroy` and the cluster deleted.
#
#   scripts/e2e-kind.sh              # everything, cleaned up at the end (also on failure)
#   KEEP=1 scripts/e2e-kind.sh       # leave the cluster, registry and stack running to look around
#
# Needs Docker, kind, kubectl, the Pulumi CLI, Go (installs cloud-provider-kind), curl, openssl and Python 3.11.
# Linux: the load balancer's IP is reachable from the host (on macOS, run it in a Linux VM or in CI).
# State goes to a local Pulumi backend in .e2e/ (nothing leaves the machine).
set -euo pipefail
cd "$(dirname "$0")/.."

cluster=tyk                 # Pulumi.local.yaml: cluster.context kind-tyk
registry_name=kind-registry # kind's "local registry" guide: localhost:5001 on the host, kind-registry:5000 inside
registry_port=5001          # Pulumi.local.yaml: controller.image.registry localhost:5001
cloud_provider_kind=sigs.k8s.io/cloud-provider-kind@v0.11.1
namespace=tyk
stack=local
work=$PWD/.e2e
mkdir -p "$work/state" "$work/bin"
export PULUMI_BACKEND_URL="file://$work/state"
export PULUMI_CONFIG_PASSPHRASE=${PULUMI_CONFIG_PASSPHRASE:-e2e-kind-local-only}
export KUBECONFIG="$work/kubeconfig"

log() { printf '\n== %s\n' "$*" >&2; }

provider_pid=""
forward_pid=""
cleanup() {
  status=$?
  if [ "${KEEP:-}" = 1 ]; then
    [ -n "$forward_pid" ] && kill "$forward_pid" 2>/dev/null || true
    log "KEEP=1: cluster, registry and stack left running (KUBECONFIG=$KUBECONFIG)"
    exit "$status"
  fi
  if [ "$status" -ne 0 ]; then
    log "failed; controller and gateway logs:"
    kubectl --namespace "$namespace" logs deployment/tyk-controller --tail=100 >&2 || true
    kubectl --namespace "$namespace" logs deployment/gateway-tyk-gateway --tail=50 >&2 || true
  fi
  [ -n "$forward_pid" ] && kill "$forward_pid" 2>/dev/null || true
  log "pulumi destroy"
  pulumi destroy --yes --stack "$stack" --non-interactive || true
  [ -n "$provider_pid" ] && kill "$provider_pid" 2>/dev/null || true
  kind delete cluster --name "$cluster" || true
  docker rm -f "$registry_name" >/dev/null 2>&1 || true
  exit "$status"
}
trap cleanup EXIT

log "kind's local registry on localhost:$registry_port"
if [ "$(docker inspect -f '{{.State.Running}}' "$registry_name" 2>/dev/null || true)" != true ]; then
  docker run -d --restart=always -p "127.0.0.1:$registry_port:5000" --network bridge --name "$registry_name" registry:2
fi

log "kind cluster $cluster"
kind create cluster --name "$cluster" --kubeconfig "$KUBECONFIG" --config - <<'EOF'
kind: Cluster
apiVersion: kind.x-k8s.io/v1alpha4
containerdConfigPatches:
  - |-
    [plugins."io.containerd.grpc.v1.cri".registry]
      config_path = "/etc/containerd/certs.d"
EOF
# Nodes resolve localhost:5001 to the registry container (kind's guide, "Create a cluster with a local registry").
for node in $(kind get nodes --name "$cluster"); do
  docker exec "$node" mkdir -p "/etc/containerd/certs.d/localhost:$registry_port"
  printf '[host."http://%s:5000"]\n' "$registry_name" |
    docker exec -i "$node" cp /dev/stdin "/etc/containerd/certs.d/localhost:$registry_port/hosts.toml"
done
if [ "$(docker inspect -f '{{json .NetworkSettings.Networks.kind}}' "$registry_name")" = null ]; then
  docker network connect kind "$registry_name"
fi
kubectl apply -f - <<EOF
apiVersion: v1
kind: ConfigMap
metadata:
  name: local-registry-hosting
  namespace: kube-public
data:
  localRegistryHosting.v1: |
    host: "localhost:$registry_port"
    help: "https://kind.sigs.k8s.io/docs/user/local-registry/"
EOF
# One node that is also the control plane: let load balancers send traffic to it (cloud-provider-kind README).
kubectl label node "$cluster-control-plane" node.kubernetes.io/exclude-from-external-load-balancers-

log "cloud-provider-kind (LoadBalancer addresses for kind)"
GOBIN="$work/bin" GOTOOLCHAIN=auto go install "$cloud_provider_kind"
"$work/bin/cloud-provider-kind" >"$work/cloud-provider-kind.log" 2>&1 &
provider_pid=$!

log "pulumi up: gateways, Redis, controller (image built and pushed to localhost:$registry_port)"
./run plan "$stack" >/dev/null # sets up .venv, the virtualenv Pulumi.yaml names; fails early on bad config
pulumi login "$PULUMI_BACKEND_URL"
pulumi stack select --create "$stack" --non-interactive
api_secret=$(openssl rand -hex 24)
pulumi config set --secret apiSecret "$api_secret" --stack "$stack"
# API definitions go to the control API through the Kubernetes API server (apiManagement.access kubernetes).
pulumi up --yes --skip-preview --stack "$stack" --non-interactive
kubectl --namespace "$namespace" rollout status deployment/tyk-controller --timeout=180s

address=$(kubectl --namespace "$namespace" get service tyk-gateway-entry -o jsonpath='{.status.loadBalancer.ingress[0].ip}')
[ -n "$address" ] || { echo "the gateways' LoadBalancer has no address" >&2; exit 1; }
log "gateways' entry point: $address"

log "an Ingress of class tyk, served through the gateways"
kubectl apply -f examples/ingress-simple.yaml
kubectl wait deployment/httpbin --for=condition=Available --timeout=180s
# The controller publishes the entry Service's address on the Ingresses it serves.
kubectl wait ingress/httpbin --for=jsonpath="{.status.loadBalancer.ingress[0].ip}=$address" --timeout=120s
curl -fsS --retry 30 --retry-all-errors --retry-delay 2 -H 'Host: httpbin.localtest.me' "http://$address/get" |
  grep -q '"Host"'

log "a TLS Ingress: its certificate served for its host on 443"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 -subj '/CN=secure.localtest.me' \
  -addext 'subjectAltName=DNS:secure.localtest.me' -keyout "$work/tls.key" -out "$work/tls.crt" 2>/dev/null
kubectl create secret tls httpbin-tls --cert="$work/tls.crt" --key="$work/tls.key" --dry-run=client -o yaml |
  kubectl apply -f -
kubectl apply -f examples/ingress-tls.yaml
curl -fsS --retry 30 --retry-all-errors --retry-delay 2 --cacert "$work/tls.crt" \
  --resolve "secure.localtest.me:443:$address" https://secure.localtest.me/get | grep -q '"Host"'

log "the API of definitions/ with a key from its policy"
# One port-forward to the control API (cluster-internal on purpose) for the key request.
kubectl --namespace "$namespace" port-forward svc/gateway-control-svc-tyk-gateway 9696:9696 >"$work/port-forward.log" 2>&1 &
forward_pid=$!
curl -fsS --retry 10 --retry-connrefused --retry-delay 1 http://localhost:9696/hello >/dev/null
key=$(curl -fsS -X POST -H "x-tyk-authorization: $api_secret" \
  -d '{"org_id": "default", "apply_policies": ["httpbin-basic"]}' http://localhost:9696/tyk/keys/create |
  python3 -c 'import json, sys; print(json.load(sys.stdin)["key"])')
http_status=$(curl -s -o /dev/null -w '%{http_code}' "http://$address/httpbin/get")
[ "$http_status" = 401 ] || { echo "without a key: HTTP $http_status, expected 401" >&2; exit 1; }
curl -fsS --retry 5 --retry-all-errors --retry-delay 2 -H "Authorization: $key" "http://$address/httpbin/get" >/dev/null

log "end to end: passed"
