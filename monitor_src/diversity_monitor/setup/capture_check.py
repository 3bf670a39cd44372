"""Confirm data capture works end to end: send a few tagged requests, wait until they land in S3.

Used by notebooks/01_enable_data_capture.ipynb after capture is switched on. The requests carry
`InferenceId=diversity-replay-capture-check-<tag>-<n>`, the replay prefix, so live-traffic
analyses (`capture.reader.live_diversity`) leave them out like the monitor's own replay.

No clock is involved (the notebook's clock and the platform's can differ, e.g. on the local
stack's simulated time): capture keys sort by time (`<variant>/yyyy/mm/dd/hh/MM-SS-...`), so the
newest hour folder present before sending is the point from which new files are read. Polling
reads only that hour and later, so it stays cheap on a busy endpoint. Capture files are read with
the capture reader's own loop: a malformed line is counted with its file and line in the
arrival's `malformed` log (and in the timeout message), like everywhere else in the kit.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field

import boto3

from diversity_monitor import storage
from diversity_monitor.capture.reader import MalformedLog, iter_file_events
from diversity_monitor.conventions import REPLAY_INFERENCE_PREFIX
from diversity_monitor.job.inputs import load_validation_set

CHECK_PREFIX = f"{REPLAY_INFERENCE_PREFIX}capture-check-"
_TIME_LEVELS = 4  # yyyy/mm/dd/hh


class CaptureNotArriving(RuntimeError):
    """The tagged requests did not show up under the capture prefix in time."""


@dataclass
class CaptureCheck:
    """Where to look and what was sent: made before sending, polled after."""

    endpoint_name: str
    destination_s3_uri: str
    variants: list[str]
    start_keys: dict[str, str]  # variant -> list from this key on (the newest hour folder before sending)
    inference_ids: list[str] = field(default_factory=list)

    def prefix(self, variant: str | None = None) -> str:
        parts = [self.endpoint_name] + ([variant] if variant else [])
        return storage.join(self.destination_s3_uri, *parts)


@dataclass(frozen=True)
class CaptureArrival:
    prefix: str
    files: list[str]
    found: list[str]
    waited_seconds: float
    malformed: MalformedLog = field(default_factory=MalformedLog)  # bad lines in the files read


def _children(s3, bucket: str, prefix: str) -> list[str]:
    names = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix, Delimiter="/"):
        names += [item["Prefix"] for item in page.get("CommonPrefixes", [])]
    return sorted(names)


def newest_hour_prefix(variant_uri: str, s3=None) -> str:
    """The key prefix of the newest `yyyy/mm/dd/hh/` folder under a variant, or the variant's own."""
    s3 = s3 or storage.s3_client()
    location = storage.S3Location.parse(variant_uri.rstrip("/") + "/")
    prefix = location.key
    for _ in range(_TIME_LEVELS):
        children = _children(s3, location.bucket, prefix)
        if not children:
            return location.key
        prefix = children[-1]
    return prefix


def prepare(endpoint_name: str, destination_s3_uri: str, client=None, s3=None) -> CaptureCheck:
    client = client or boto3.client("sagemaker")
    endpoint = client.describe_endpoint(EndpointName=endpoint_name)
    variants = [variant["VariantName"] for variant in endpoint["ProductionVariants"]]
    check = CaptureCheck(endpoint_name, destination_s3_uri.rstrip("/"), variants, {})
    for variant in variants:
        check.start_keys[variant] = newest_hour_prefix(check.prefix(variant), s3)
    return check


def send_sample_requests(check: CaptureCheck, validation_set: str, count: int = 5, client=None) -> list[str]:
    """InvokeEndpoint with the first `count` validation requests, each tagged; returns the ids sent."""
    if count < 1:
        raise ValueError(f"count must be at least 1, got {count}")
    sessions = load_validation_set(validation_set)[:count]
    client = client or boto3.client("sagemaker-runtime")
    tag = uuid.uuid4().hex[:8]
    for number, session in enumerate(sessions):
        inference_id = f"{CHECK_PREFIX}{tag}-{number}"
        client.invoke_endpoint(EndpointName=check.endpoint_name, Body=session.wire_body(),
                               ContentType="application/json", Accept="application/json", InferenceId=inference_id)
        check.inference_ids.append(inference_id)
    return list(check.inference_ids)


def _new_files(check: CaptureCheck, s3) -> list[str]:
    files = []
    for variant in check.variants:
        location = storage.S3Location.parse(check.prefix(variant) + "/")
        start = check.start_keys[variant]
        listing = {"Bucket": location.bucket, "Prefix": location.key}
        if start != location.key:
            listing["StartAfter"] = start  # keys inside the hour folder sort after its prefix
        for page in s3.get_paginator("list_objects_v2").paginate(**listing):
            files += [f"s3://{location.bucket}/{item['Key']}" for item in page.get("Contents", [])]
    return sorted(files)


def _ids_in(uri: str, malformed: MalformedLog) -> set[str]:
    """The InferenceIds recorded in one capture file; its bad lines go to `malformed`."""
    return {event.inference_id for event in iter_file_events(uri, malformed=malformed) if event.inference_id}


def wait_for_capture(check: CaptureCheck, timeout_seconds: float = 600, poll_seconds: float = 30,
                     required: int | None = None, s3=None) -> CaptureArrival:
    """Poll until `required` tagged requests (default: all; with sampling below 100% ask for fewer)
    are in capture files; CaptureNotArriving after the timeout."""
    s3 = s3 or storage.s3_client()
    wanted = set(check.inference_ids)
    if not wanted:
        raise ValueError("no tagged requests were sent: call send_sample_requests first")
    required = len(wanted) if required is None else required
    if not 1 <= required <= len(wanted):
        raise ValueError(f"required must be between 1 and {len(wanted)} (the requests sent), got {required}")
    started = time.monotonic()
    seen_files: dict[str, set[str]] = {}
    malformed = MalformedLog()
    while True:
        for uri in _new_files(check, s3):
            if uri not in seen_files:
                seen_files[uri] = _ids_in(uri, malformed)
        found = wanted & set().union(*seen_files.values()) if seen_files else set()
        waited = time.monotonic() - started
        if len(found) >= required:
            files = sorted(uri for uri, ids in seen_files.items() if ids & wanted)
            return CaptureArrival(check.prefix(), files, sorted(found), waited, malformed)
        if waited > timeout_seconds:
            bad = (f"; {malformed.count} malformed lines, first {malformed.entries[0][0]}:{malformed.entries[0][1]} "
                   f"({malformed.entries[0][2]})" if malformed.count else "")
            raise CaptureNotArriving(
                f"after {waited:.0f} s, {len(found)} of {len(wanted)} tagged requests (needed {required}) are under {check.prefix()}/ "
                f"({len(seen_files)} new files read{bad}). Check the endpoint config's DataCaptureConfig, the "
                "destination bucket's policy and the endpoint role's s3:PutObject permission."
            )
        time.sleep(poll_seconds)
