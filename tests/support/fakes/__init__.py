"""The one home of the test fakes. Each stands in for a part a test cannot make do what it needs
(faults, limits, races, root) and says so; everything else in the tests is real.

- ``testbed.fake_cloud.FakeCloud`` (in testbed/, as a benchmark uses it too): the EFS API in
  memory (races, limits, access points made behind the controller's back); the real adapter
  runs against moto in tests/core/adapters/aws.
- ``kube.FakeKube``: the Kubernetes API in memory, for the use cases' logic; the real adapter
  runs against a real kube-apiserver in tests/cluster.
- ``testbed.kube_api.FakeKubeApi`` (in testbed/, as the benchmarks use it too): an HTTP API
  server for the faults a real one cannot be made to answer on cue (500/503/409, malformed
  answers).
- ``mounts.FakeMountTable``: the kernel's mount table in memory, changed by the driver's real
  ``mount``/``umount`` command lines, so staging and publishing run without root.
  ``mounts.FlakyMounter`` fails on demand.
- ``dead_server.DeadServer``: ``stat`` and ``statvfs`` as a dead NFS server answers them (ESTALE,
  or no answer) on chosen paths, which a bind mount cannot be made to do.
"""
