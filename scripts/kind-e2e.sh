#!/usr/bin/env bash
# End to end on the kind cluster from kind-up.sh, safe to run again and again:
# 1. find or create the file system in the in-cluster EFS API (moto), by creation token;
# 2. apply the dynamic provisioning example, check a pod writes what another pod reads;
# 3. delete the pods and the claim, wait for the PV to go, and check that the access point's
#    directory went with it (controller.deleteAccessPointRootDir in kind/values.yaml).
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
data_dir="${EFS_CSI_KIND_DATA:-/tmp/efs-csi-kind}"
python="${PYTHON:-${repo}/.venv/bin/python}"
namespace=efs-csi-e2e
port="${EFS_CSI_KIND_API_PORT:-15000}"
specs="${repo}/examples/dynamic_provisioning/specs"

kubectl -n kube-system port-forward service/efs-api "${port}:5000" >/dev/null 2>&1 &
forward=$!
trap 'kill "${forward}" 2>/dev/null || true' EXIT
for attempt in $(seq 1 60); do
  if "${python}" -c "import urllib.request, sys; urllib.request.urlopen(sys.argv[1], timeout=1)" \
       "http://127.0.0.1:${port}/moto-api/" 2>/dev/null; then
    break
  fi
  if (( attempt == 60 )); then echo "FAIL: no EFS API on 127.0.0.1:${port}" >&2; exit 1; fi
  sleep 0.5
done

fs_id="$("${python}" "${repo}/scripts/kind-file-system.py" \
          --endpoint "http://127.0.0.1:${port}" --token kind-e2e)"
echo "file system ${fs_id}"
# The local backend serves each file system from <root>/<fs id>, shared by every kind node.
mkdir -p "${data_dir}/${fs_id}"

kubectl create namespace "${namespace}" --dry-run=client -o yaml | kubectl apply -f -
# StorageClass parameters are immutable: replace the class when the file system changed (the
# EFS API restarted and forgot it).
if [[ "$(kubectl get storageclass efs-sc -o jsonpath='{.parameters.fileSystemId}' \
          2>/dev/null || true)" != "${fs_id}" ]]; then
  kubectl delete storageclass efs-sc --ignore-not-found
fi
sed "s/fs-92107410/${fs_id}/" "${specs}/storageclass.yaml" | kubectl apply -f -
kubectl -n "${namespace}" apply -f "${specs}/claim.yaml" -f "${specs}/pod.yaml"
kubectl -n "${namespace}" wait --for=condition=Ready pod/efs-app --timeout=3m
kubectl -n "${namespace}" exec efs-app -- sh -c 'echo written-by-efs-app > /data/e2e.txt'

sed 's/name: efs-app$/name: efs-reader/' "${specs}/pod.yaml" | kubectl -n "${namespace}" apply -f -
kubectl -n "${namespace}" wait --for=condition=Ready pod/efs-reader --timeout=3m
got="$(kubectl -n "${namespace}" exec efs-reader -- cat /data/e2e.txt)"
if [[ "${got}" != "written-by-efs-app" ]]; then
  echo "FAIL: the second pod read '${got}'" >&2
  exit 1
fi
echo "PASS: one pod wrote, another read it back through efs-csi"

claim="$(kubectl -n "${namespace}" get -f "${specs}/claim.yaml" -o jsonpath='{.metadata.name}')"
volume="$(kubectl -n "${namespace}" get pvc "${claim}" -o jsonpath='{.spec.volumeName}')"
handle="$(kubectl get pv "${volume}" -o jsonpath='{.spec.csi.volumeHandle}')"
access_point="${handle##*:}"
directory="$("${python}" - "http://127.0.0.1:${port}" "${access_point}" <<'PY'
import sys
import boto3

client = boto3.client("efs", region_name="us-east-1", endpoint_url=sys.argv[1],
                      aws_access_key_id="testing", aws_secret_access_key="testing")
print(client.describe_access_points(AccessPointId=sys.argv[2])
      ["AccessPoints"][0]["RootDirectory"]["Path"])
PY
)"
echo "volume ${volume}: access point ${access_point}, directory ${directory}"
kubectl -n "${namespace}" delete pod efs-app efs-reader --wait=true
kubectl -n "${namespace}" delete pvc "${claim}" --wait=true
kubectl wait --for=delete "pv/${volume}" --timeout=3m
# The directory lives on the host, under the shared local root; a root-owned check through a
# kind node sees it whatever uid the access point gave it.
node="$(kind get nodes --name "${KIND_CLUSTER:-efs-csi}" | head -1)"
if docker exec "${node}" test -e "/var/lib/efs-csi-local/${fs_id}${directory}"; then
  echo "FAIL: ${directory} is still on the file system after the PV was deleted" >&2
  exit 1
fi
echo "PASS: deleting the claim deleted its access point and its directory"
