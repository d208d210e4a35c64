"""The only modules that import the AWS SDK (``aws``) and the Kubernetes client (``kube``).

Each implements a protocol of the core (``efs_csi.cloud.Cloud``, ``efs_csi.kube.Kube``) and
turns every failure of its library into an ``efs_csi.errors`` exception. The composition roots
build them; nothing else imports them (import-linter keeps it so). They are the core's extras:
efs-csi-core[aws] and efs-csi-core[kube].
"""
