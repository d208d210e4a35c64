"""docs/iam-policy.json means what docs/iam-policy.md says, for the calls the controller
really makes (review finding #4), and AWS's refusals reach the CO without account details
(finding #15).

The controller runs whole (the service, the use cases, the real aiobotocore adapter) against
moto over HTTP behind the EFS proxy, which authorises every EFS call against the policy as EFS
does, tag-on-create included (``testbed.iam_policy``: IAM itself cannot run here).
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from grpclib.const import Status
from structlog.testing import capture_logs

from efs_csi import csi
from efs_csi.adapters.aws.roles import CloudFactory
from efs_csi.errors import CsiError, to_grpc_error
from efs_csi_controller.app import build_controller
from efs_csi_controller.service import ControllerService
from efs_csi_controller.tags import CLUSTER_TAG, PV_NAME_TAG
from testbed.csi_builders import create_request
from testbed.efs_proxy import EfsProxy, make_file_system
from testbed.iam_policy import IamAuthorizer, IdentityPolicy, efs_authorizations
from testbed.moto_server import CREDENTIALS, REGION, MotoEndpoint
from tests.support.ci import REPO

POLICY = REPO / "docs" / "iam-policy.json"
#: The principal tag the policy's ${aws:PrincipalTag/...} reads (docs/iam-policy.md).
PRINCIPAL_TAG = "efs-csi-cluster-id"
CLUSTER = "0b6f6a7e-3c5d-4c86-9d1e-1f2a3b4c5d6e"
ACCOUNT = "111122223333"
Mode = csi.VolumeCapabilityAccessModeMode

#: Granted actions the controller's own calls do not use, and why they stay.
NOT_CALLED_BY_THE_CONTROLLER = {
    "ec2:DescribeAvailabilityZones": "efs-utils on the node maps a zone name to its id for "
                                     "its mount-target IP fallback",
    "elasticfilesystem:DescribeMountTargets": "cross-account volumes (the controller writes "
                                              "their mount target IPs) and efs-utils' "
                                              "fallback on the node",
    "elasticfilesystem:DescribeFileSystems": "enforceZoneAffinity (One Zone file systems) and "
                                             "ValidateVolumeCapabilities of a static volume",
}


def policy(document: dict[str, Any] | None = None) -> IdentityPolicy:
    return IdentityPolicy(document or json.loads(POLICY.read_text()),
                          {PRINCIPAL_TAG: CLUSTER})


@pytest.fixture
def proxy(moto: MotoEndpoint, monkeypatch: pytest.MonkeyPatch) -> Iterator[EfsProxy]:
    for key, value in CREDENTIALS.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    with EfsProxy(moto.url) as running:
        running.iam = IamAuthorizer(policy(), caller_arn=(
            f"arn:aws:sts::{ACCOUNT}:assumed-role/efs-csi-controller/botocore-session-1"))
        yield running


def efs(url: str) -> Any:
    return boto3.client("efs", region_name=REGION, endpoint_url=url,
                        aws_access_key_id="testing", aws_secret_access_key="testing")


def made_elsewhere(moto: MotoEndpoint, fs_id: str, cluster: str) -> str:
    """An access point another cluster made (straight in moto: not through our IAM)."""
    reply = efs(moto.url).create_access_point(
        FileSystemId=fs_id, ClientToken=f"elsewhere-{cluster}", RootDirectory={"Path": "/x"},
        PosixUser={"Uid": 1, "Gid": 1},
        Tags=[{"Key": CLUSTER_TAG, "Value": cluster}, {"Key": PV_NAME_TAG, "Value": "pv-x"}])
    return str(reply["AccessPointId"])


def controller(clouds: CloudFactory, cluster_id: str = CLUSTER) -> ControllerService:
    return build_controller(clouds, access_point_limit=100,
                            extra_tags={"team": "storage"}, cluster_id=cluster_id).service


@pytest.mark.asyncio
async def test_a_volumes_life_is_allowed_and_every_grant_is_used_or_explained(
        proxy: EfsProxy, moto: MotoEndpoint) -> None:
    fs_id = make_file_system(moto.url).file_system_id  # an administrator's, not ours
    proxy.reset_counts()
    async with CloudFactory(REGION, endpoint_url=proxy.url, adaptive_retry=False) as clouds:
        service = controller(clouds)
        first = await service.create_volume(create_request("pv-1", fs_id))
        again = await service.create_volume(create_request("pv-1", fs_id))  # a retry
        assert first.volume is not None and again.volume is not None
        assert again.volume.volume_id == first.volume.volume_id
        for _ in range(2):  # deleting is idempotent
            await service.delete_volume(csi.DeleteVolumeRequest(
                volume_id=first.volume.volume_id))
    called = {f"elasticfilesystem:{operation}" for operation in proxy.calls}
    assert "elasticfilesystem:CreateAccessPoint" in called
    granted = policy().granted_actions()
    # Every call went through the policy (nothing was refused, or a call above had failed),
    # and a create with tags is also authorised as TagResource, which the policy grants.
    assert called <= granted
    unexplained = granted - called - {"elasticfilesystem:TagResource"} \
        - set(NOT_CALLED_BY_THE_CONTROLLER)
    assert unexplained == set(), f"granted, never called, no reason given: {unexplained}"


@pytest.mark.asyncio
@pytest.mark.parametrize("cluster", ["another-cluster", "0b6f6a7e"])
async def test_another_clusters_access_point_cannot_be_deleted(
        proxy: EfsProxy, moto: MotoEndpoint, cluster: str) -> None:
    fs_id = make_file_system(moto.url).file_system_id  # an administrator's, not ours
    foreign = made_elsewhere(moto, fs_id, cluster)
    async with CloudFactory(REGION, endpoint_url=proxy.url, adaptive_retry=False) as clouds:
        with capture_logs() as logs, pytest.raises(CsiError) as raised:
            await controller(clouds).delete_volume(
                csi.DeleteVolumeRequest(volume_id=f"{fs_id}::{foreign}"))
    assert raised.value.status == Status.PERMISSION_DENIED
    assert efs(moto.url).describe_access_points(AccessPointId=foreign)["AccessPoints"]
    # What the CO (and so a PVC event) shows: no role, no session, no account.
    shown = to_grpc_error(raised.value).message or ""
    assert "DeleteAccessPoint" in shown and "AccessDeniedException" in shown
    assert "arn:" not in shown and ACCOUNT not in shown and "assumed-role" not in shown
    assert "correlation id" in shown
    # What the operator finds in the log under that id: AWS's whole text.
    reference = shown.split("correlation id ", 1)[1].split(":", 1)[0]
    withheld = [entry for entry in logs if entry.get("correlation_id") == reference]
    assert withheld and f"arn:aws:sts::{ACCOUNT}:assumed-role" in withheld[0]["aws_message"]


@pytest.mark.asyncio
async def test_the_controller_cannot_tag_after_creation(proxy: EfsProxy,
                                                        moto: MotoEndpoint) -> None:
    """The hole the review found: TagResource on '*' let the controller put the cluster tag on
    any access point, then delete it. Tagging is now allowed only inside CreateAccessPoint."""
    fs_id = make_file_system(moto.url).file_system_id  # an administrator's, not ours
    foreign = made_elsewhere(moto, fs_id, "another-cluster")
    client = efs(proxy.url)  # the controller's credentials, through the policy
    with pytest.raises(client.exceptions.ClientError) as raised:
        client.tag_resource(ResourceId=foreign, Tags=[{"Key": CLUSTER_TAG, "Value": CLUSTER}])
    assert raised.value.response["Error"]["Code"] == "AccessDeniedException"
    # The same check the proxy made, against the policy the review found: it allowed it.
    old = copy.deepcopy(json.loads(POLICY.read_text()))
    old["Statement"] = [statement for statement in old["Statement"]
                        if statement["Sid"] == "DescribeForProvisioningAndMounting"] + [
        {"Effect": "Allow", "Action": ["elasticfilesystem:CreateAccessPoint",
                                       "elasticfilesystem:TagResource"], "Resource": "*",
         "Condition": {"StringLike": {"aws:RequestTag/efs.csi.aws.com/cluster": "true"}}}]
    tag_foreign = efs_authorizations("TagResource", request_tags={CLUSTER_TAG: "true"},
                                     resource_tags={CLUSTER_TAG: "another-cluster"})
    assert all(IdentityPolicy(old).allows(request) for request in tag_foreign)
    assert not all(policy().allows(request) for request in tag_foreign)


@pytest.mark.asyncio
async def test_a_controller_of_another_cluster_id_cannot_create(proxy: EfsProxy,
                                                               moto: MotoEndpoint) -> None:
    fs_id = make_file_system(moto.url).file_system_id  # an administrator's, not ours
    async with CloudFactory(REGION, endpoint_url=proxy.url, adaptive_retry=False) as clouds:
        with pytest.raises(CsiError) as raised:
            await controller(clouds, cluster_id="not-the-roles-tag").create_volume(
                create_request("pv-2", fs_id))
    assert raised.value.status == Status.PERMISSION_DENIED
    assert "CreateAccessPoint" in raised.value.message


@pytest.mark.asyncio
async def test_access_points_of_older_releases_stay_deletable_while_migrating(
        proxy: EfsProxy, moto: MotoEndpoint) -> None:
    """Older releases tagged every access point 'true': the policy's migration statement keeps
    them deletable (docs/iam-policy.md says when to drop it); without it they are not."""
    fs_id = make_file_system(moto.url).file_system_id  # an administrator's, not ours
    legacy = made_elsewhere(moto, fs_id, "true")
    async with CloudFactory(REGION, endpoint_url=proxy.url, adaptive_retry=False) as clouds:
        service = controller(clouds)
        await service.delete_volume(csi.DeleteVolumeRequest(volume_id=f"{fs_id}::{legacy}"))
        assert efs(moto.url).describe_access_points(FileSystemId=fs_id)["AccessPoints"] == []
        document = json.loads(POLICY.read_text())
        document["Statement"] = [statement for statement in document["Statement"]
                                 if not statement["Sid"].startswith("Migration")]
        assert proxy.iam is not None
        proxy.iam = IamAuthorizer(policy(document), proxy.iam.caller_arn)
        legacy = made_elsewhere(moto, fs_id, "true")
        with pytest.raises(CsiError) as raised:
            await service.delete_volume(csi.DeleteVolumeRequest(volume_id=f"{fs_id}::{legacy}"))
        assert raised.value.status == Status.PERMISSION_DENIED
