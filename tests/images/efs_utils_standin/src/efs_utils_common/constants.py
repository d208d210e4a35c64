"""Stand-in for efs-utils' constants module: the version and the paths the helpers share."""

VERSION = "0.0.0-standin"
CONFIG_FILE = "/etc/amazon/efs/efs-utils.conf"
CONFIG_SECTION = "mount"
STATE_FILE_DIR = "/var/run/efs"
LOG_DIR = "/var/log/amazon/efs"
