"""``python -m slowfs BACKING MOUNTPOINT --delay-ms 1``: serve until unmounted."""

from slowfs.server import main

main()
