#!/usr/bin/env bash
# End to end on the kind cluster from kind-up.sh: create a file system in the in-cluster moto,
# apply the dynamic provisioning example, and check a pod writes what another pod reads.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
data_dir="${EFS_CSI_KIND_DATA:-/tmp/efs-csi-kind}"
python="${PYTHON:-${repo}/.venv/bin/python}"
namespace=efs-csi-e2e
port=15000

kubectl -n kube-system port-forward service/efs-api "${port}:5000" >/dev/null 2>&1 &
forward=$!
trap 'kill "${forward}" 2>/dev/null || true' EXIT
sleep 3

fs_id="$("${python}" - "${port}" <<'PY'
import sys
import boto3

client = boto3.client("efs", region_name="us-east-1", endpoint_url=f"http://127.0.0.1:{sys.argv[1]}",
                      aws_access_key_id="testing", aws_secret_access_key="testing")
print(client.create_file_system(CreationToken="kind-e2e")["FileSystemId"])
PY
)"
echo "file system ${fs_id}"
# The local backend serves each file system from <root>/<fs id>, shared by every kind node.
mkdir -p "${data_dir}/${fs_id}"

kubectl create namespace "${namespace}" --dry-run=client -o yaml | kubectl apply -f -
sed "s/fs-92107410/${fs_id}/" "${repo}/examples/dynamic_provisioning/specs/storageclass.yaml" \
  | kubectl apply -f -
kubectl -n "${namespace}" apply -f "${repo}/examples/dynamic_provisioning/specs/claim.yaml" \
  -f "${repo}/examples/dynamic_provisioning/specs/pod.yaml"
kubectl -n "${namespace}" wait --for=condition=Ready pod/efs-app --timeout=3m
kubectl -n "${namespace}" exec efs-app -- sh -c 'echo written-by-efs-app > /data/e2e.txt'

sed 's/name: efs-app$/name: efs-reader/' "${repo}/examples/dynamic_provisioning/specs/pod.yaml" \
  | kubectl -n "${namespace}" apply -f -
kubectl -n "${namespace}" wait --for=condition=Ready pod/efs-reader --timeout=3m
got="$(kubectl -n "${namespace}" exec efs-reader -- cat /data/e2e.txt)"
if [[ "${got}" != "written-by-efs-app" ]]; then
  echo "FAIL: the second pod read '${got}'" >&2
  exit 1
fi
echo "PASS: one pod wrote, another read it back through efs-csi"
