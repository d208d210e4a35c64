"""``python -m testbed.slowfs BACKING MOUNTPOINT --delay-ms 1``: serve until unmounted."""

from testbed.slowfs.server import main

main()
