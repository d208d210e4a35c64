"""Stand-in for efs-utils' config reading: the same file, and the same failure without it.

The real helpers read the file with ``configparser`` and fail with ``NoSectionError`` when it
is missing or lacks a section they need (the controller ran into exactly that before it had a
configuration of its own). The stand-in does the same.
"""

import configparser

from efs_utils_common.constants import CONFIG_FILE


def read_config(section, config_file=CONFIG_FILE):
    config = configparser.ConfigParser()
    config.read(config_file)
    # Raises configparser.NoSectionError, as efs-utils does, when the section is missing.
    config.options(section)
    return config
