"""efs-utils on the node: its configuration directory and file, and its mount watchdog.

- ``config``: parse ``--efs-utils-conf-overrides`` and render ``efs-utils.conf`` (pure).
- ``prepare``: the config directory (legacy migration, static files, atomic write).
- ``watchdog``: run ``amazon-efs-mount-watchdog`` and restart it with capped backoff.
- ``reaper``: reap orphaned tunnel processes that become our children.
- ``startup``: what the node does with the above when it starts (``EfsUtilsConfig``, the config
  directory prepared before serving, the watchdog and reaper as background tasks).
"""
