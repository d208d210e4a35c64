"""Print the id of the kind workflow's file system in the EFS API at --endpoint, creating it on
the first run only: a second `make kind-e2e` finds the one the first made (by creation token)
instead of failing with FileSystemAlreadyExists.

Usage: kind-file-system.py --endpoint http://127.0.0.1:15000 [--token kind-e2e]
"""

from __future__ import annotations

import argparse
import sys

import boto3


def file_system_id(endpoint: str, token: str, region: str) -> str:
    client = boto3.client("efs", region_name=region, endpoint_url=endpoint,
                          # moto accepts any credentials; these are its documented fakes.
                          aws_access_key_id="testing", aws_secret_access_key="testing")  # noqa: S106
    found = client.describe_file_systems(CreationToken=token)["FileSystems"]
    if found:
        return str(found[0]["FileSystemId"])
    try:
        return str(client.create_file_system(CreationToken=token)["FileSystemId"])
    except client.exceptions.FileSystemAlreadyExists as exists:  # made meanwhile
        return str(exists.response["FileSystemId"])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--endpoint", required=True)
    parser.add_argument("--token", default="kind-e2e")
    parser.add_argument("--region", default="us-east-1")
    args = parser.parse_args()
    print(file_system_id(args.endpoint, args.token, args.region))
    return 0


if __name__ == "__main__":
    sys.exit(main())
