"""Pointing a notebook's boto3 at AWS or at the local stack: one parameter, no branches.

Notebooks take `endpoint_url` (None for AWS) and `region` as papermill parameters and call
`use_endpoint` once; after that every boto3 client they (and the kit) create goes there through
boto3's own `AWS_ENDPOINT_URL` setting. The kit's code never asks which one it is talking to.
"""

from __future__ import annotations

import os

import boto3


def use_endpoint(endpoint_url: str | None, region: str | None = None) -> dict[str, str | None]:
    if endpoint_url:
        os.environ["AWS_ENDPOINT_URL"] = endpoint_url
    if region:
        os.environ["AWS_DEFAULT_REGION"] = region
        os.environ["AWS_REGION"] = region
    boto3.setup_default_session()  # forget any session built before the settings changed
    return {"endpoint_url": os.environ.get("AWS_ENDPOINT_URL"), "region": boto3.session.Session().region_name}
