"""The EFS API through aiobotocore: the one package that knows botocore (the core's ``[aws]``
extra). One module per concept, as kopf's ``_cogs/clients/``:

- ``client``: how botocore clients are configured and made (``new_client``), and the region;
- ``errors``: the AWS error table, the one vocabulary of throttle codes, and the translation of
  every botocore failure into an ``efs_csi.errors`` exception;
- ``cloud``: ``AwsCloud``, the ``efs_csi.cloud.Cloud`` port over one EFS client, with its
  per-API retries and the caller's deadline;
- ``roles``: ``CloudFactory``, the process's session: the default cloud and one per assumed
  role (STS).

The composition roots import what they build from here, lazily (the SDK costs start-up time).
"""

from efs_csi.adapters.aws.client import resolve_region
from efs_csi.adapters.aws.cloud import AwsCloud
from efs_csi.adapters.aws.roles import CloudFactory

__all__ = ["AwsCloud", "CloudFactory", "resolve_region"]
