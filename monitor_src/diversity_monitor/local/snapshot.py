"""Keep moto's S3 across restarts: a snapshot folder written at stop and loaded at start.

moto holds its state in memory, so `local down` would lose every report, capture and model
archive. At stop the stack copies each bucket into `<state_dir>/s3/`: `manifest.json` maps
bucket -> key -> {sha256, ETag, ContentType} and the bytes sit in `blobs/<sha256>`
(content-addressed, so an object unchanged since the last snapshot is not downloaded again).
At start the buckets and objects are put back.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

MANIFEST = "manifest.json"


def save(s3, folder: Path) -> int:
    """Write every bucket's objects under `folder`; returns the number of objects."""
    folder = Path(folder)
    blobs = folder / "blobs"
    blobs.mkdir(parents=True, exist_ok=True)
    previous = _load_manifest(folder)
    manifest: dict[str, dict[str, dict]] = {}
    for bucket in (item["Name"] for item in s3.list_buckets().get("Buckets", [])):
        objects = manifest.setdefault(bucket, {})
        known = previous.get(bucket, {})
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
            for item in page.get("Contents", []):
                key, etag = item["Key"], item["ETag"]
                entry = known.get(key)
                if entry and entry["ETag"] == etag and (blobs / entry["sha256"]).is_file():
                    objects[key] = entry
                    continue
                response = s3.get_object(Bucket=bucket, Key=key)
                data = response["Body"].read()
                digest = hashlib.sha256(data).hexdigest()
                if not (blobs / digest).is_file():
                    _write_atomically(blobs / digest, data)
                objects[key] = {"sha256": digest, "ETag": etag, "ContentType": response.get("ContentType")}
    _write_atomically(folder / MANIFEST, json.dumps(manifest, indent=1, sort_keys=True).encode())
    referenced = {entry["sha256"] for objects in manifest.values() for entry in objects.values()}
    for blob in blobs.iterdir():
        if blob.name not in referenced:
            blob.unlink()
    return sum(len(objects) for objects in manifest.values())


def restore(s3, folder: Path, region: str) -> int:
    """Recreate the snapshot's buckets and objects; returns the number of objects."""
    folder = Path(folder)
    manifest = _load_manifest(folder)
    existing = {item["Name"] for item in s3.list_buckets().get("Buckets", [])}
    for bucket, objects in manifest.items():
        if bucket not in existing:
            location = {} if region == "us-east-1" else {"CreateBucketConfiguration": {"LocationConstraint": region}}
            s3.create_bucket(Bucket=bucket, **location)
        for key, entry in objects.items():
            extra = {"ContentType": entry["ContentType"]} if entry.get("ContentType") else {}
            s3.put_object(Bucket=bucket, Key=key, Body=(folder / "blobs" / entry["sha256"]).read_bytes(), **extra)
    return sum(len(objects) for objects in manifest.values())


def _load_manifest(folder: Path) -> dict:
    path = folder / MANIFEST
    return json.loads(path.read_text()) if path.is_file() else {}


def _write_atomically(path: Path, data: bytes) -> None:
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_bytes(data)
    os.replace(temporary, path)
