"""Mounting a file system and watching what is mounted, without ever blocking the event loop.

- ``mount``: the ``Mounter`` protocol, the ``efs`` backend (``mount -t efs``) and bind mounts;
- ``local``: the ``local`` backend (a directory per file system, real bind mounts);
- ``commands``: ``mount``/``umount`` as child processes with time limits;
- ``mountinfo``: the kernel's mount table (parsing is pure);
- ``blocking``: blocking calls (file-system calls, a usage walk) in threads of their own,
  time-limited;
- ``health``: the stale-mount detector (does a mounted path still answer?).

The node stages and publishes with these; the controller mounts a file system root with them to
delete an access point's directory.
"""
