"""Keep what moto holds in memory across restarts: written at stop (and hourly), loaded at start.

moto holds its state in memory, so `local down` would lose every report, capture and model
archive, the pager's topic and queue, and the metric data alarms evaluate. Through the plain
service APIs (no moto internals), this module keeps in `<state_dir>/`:

- `s3/`: every bucket's objects. `manifest.json` maps bucket -> key -> {sha256, ETag,
  ContentType} and the bytes sit in `blobs/<sha256>` (content-addressed, so an object unchanged
  since the last snapshot is not downloaded again).
- `messaging.json`: SQS queues (settable attributes, tags; at stop also the messages waiting in
  them) and SNS topics (settable attributes, tags) with their subscriptions (protocol, endpoint,
  attributes such as RawMessageDelivery). Restored subscriptions get new SubscriptionArns (SNS
  makes them up); topic ARNs and queue names stay the same. Messages in flight (received but not
  deleted) or still delayed when the stack stops are not kept.
- `cloudwatch/metric-data.jsonl` (`MetricJournal`): every datum as it was stored, appended as it
  arrives (see `metric_data`), trimmed to the last two weeks. Reading it back out of moto is
  not an option: its ListMetrics is quadratic on multi-dimension metrics and its GetMetricData
  walks a range bucket by bucket.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from collections.abc import Iterable, Mapping
from datetime import datetime
from pathlib import Path

MANIFEST = "manifest.json"
MESSAGING = "messaging.json"
CLOCK = "clock.json"  # where a simulated clock stood when the stack stopped: `local up` resumes there

# Attributes the Create/Set calls accept back; the rest (ARNs, counters, timestamps, owners,
# effective policies) are the service's own.
QUEUE_ATTRIBUTES = (
    "DelaySeconds", "MaximumMessageSize", "MessageRetentionPeriod", "Policy", "ReceiveMessageWaitTimeSeconds",
    "VisibilityTimeout", "KmsMasterKeyId", "KmsDataKeyReusePeriodSeconds", "SqsManagedSseEnabled", "FifoQueue",
    "ContentBasedDeduplication", "DeduplicationScope", "FifoThroughputLimit",
)
QUEUE_LINKS = ("RedrivePolicy", "RedriveAllowPolicy")  # name other queues: set once all exist
TOPIC_ATTRIBUTES = (
    "DisplayName", "Policy", "DeliveryPolicy", "KmsMasterKeyId", "SignatureVersion", "TracingConfig", "FifoTopic",
    "ContentBasedDeduplication", "ArchivePolicy",
)
SUBSCRIPTION_ATTRIBUTES = (
    "DeliveryPolicy", "FilterPolicy", "FilterPolicyScope", "RawMessageDelivery", "RedrivePolicy",
    "SubscriptionRoleArn", "ReplayPolicy",
)
RECEIVE_BATCH = 10  # ReceiveMessage / SendMessageBatch maximum


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


# --- SNS and SQS ----------------------------------------------------------------------------


def save_messaging(sns, sqs, path: Path, *, messages: bool) -> dict:
    """Write queues, topics and subscriptions to `path`; with `messages`, also drain each queue's
    visible messages into it (only at stop: receiving hides them from consumers). Returns counts."""
    queues = []
    for url in _queue_urls(sqs):
        name = url.rstrip("/").rsplit("/", 1)[-1]
        attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"]).get("Attributes", {})
        queues.append({
            "QueueName": name,
            "Attributes": _settable(attributes, QUEUE_ATTRIBUTES + QUEUE_LINKS),
            "Tags": sqs.list_queue_tags(QueueUrl=url).get("Tags", {}),
            "Messages": _drain(sqs, url) if messages else [],
        })
    topics = []
    for page in sns.get_paginator("list_topics").paginate():
        for arn in (item["TopicArn"] for item in page.get("Topics", [])):
            attributes = sns.get_topic_attributes(TopicArn=arn).get("Attributes", {})
            topics.append({
                "Name": arn.rsplit(":", 1)[-1],
                "Attributes": _settable(attributes, TOPIC_ATTRIBUTES),
                "Tags": sns.list_tags_for_resource(ResourceArn=arn).get("Tags", []),
                "Subscriptions": _subscriptions(sns, arn),
            })
    _write_atomically(Path(path), json.dumps({"queues": queues, "topics": topics}, indent=1).encode())
    return {"queues": len(queues), "topics": len(topics),
            "subscriptions": sum(len(topic["Subscriptions"]) for topic in topics),
            "messages": sum(len(queue["Messages"]) for queue in queues)}


def restore_messaging(sns, sqs, path: Path) -> dict:
    """Recreate what `save_messaging` wrote: queues first (subscriptions deliver to them)."""
    path = Path(path)
    saved = json.loads(path.read_text()) if path.is_file() else {"queues": [], "topics": []}
    urls = {}
    for queue in saved["queues"]:
        attributes = {key: value for key, value in queue["Attributes"].items() if key not in QUEUE_LINKS}
        urls[queue["QueueName"]] = sqs.create_queue(QueueName=queue["QueueName"], Attributes=attributes,
                                                    tags=queue["Tags"])["QueueUrl"]
    for queue in saved["queues"]:
        links = {key: value for key, value in queue["Attributes"].items() if key in QUEUE_LINKS}
        if links:
            sqs.set_queue_attributes(QueueUrl=urls[queue["QueueName"]], Attributes=links)
        for start in range(0, len(queue["Messages"]), RECEIVE_BATCH):
            batch = queue["Messages"][start:start + RECEIVE_BATCH]
            sqs.send_message_batch(QueueUrl=urls[queue["QueueName"]],
                                   Entries=[{"Id": str(n), **message} for n, message in enumerate(batch)])
    for topic in saved["topics"]:
        extra = {"Tags": topic["Tags"]} if topic["Tags"] else {}
        arn = sns.create_topic(Name=topic["Name"], Attributes=topic["Attributes"], **extra)["TopicArn"]
        for subscription in topic["Subscriptions"]:
            sns.subscribe(TopicArn=arn, ReturnSubscriptionArn=True, **subscription)
    return {"queues": len(saved["queues"]), "topics": len(saved["topics"]),
            "subscriptions": sum(len(topic["Subscriptions"]) for topic in saved["topics"]),
            "messages": sum(len(queue["Messages"]) for queue in saved["queues"])}


def _queue_urls(sqs) -> list[str]:
    urls = []
    for page in sqs.get_paginator("list_queues").paginate():
        urls.extend(page.get("QueueUrls", []))
    return urls


def _subscriptions(sns, topic_arn: str) -> list[dict]:
    found = []
    for page in sns.get_paginator("list_subscriptions_by_topic").paginate(TopicArn=topic_arn):
        for item in page.get("Subscriptions", []):
            if not item["SubscriptionArn"].startswith("arn:"):  # "PendingConfirmation": nothing to keep
                continue
            attributes = sns.get_subscription_attributes(SubscriptionArn=item["SubscriptionArn"]).get("Attributes", {})
            found.append({"Protocol": item["Protocol"], "Endpoint": item["Endpoint"],
                          "Attributes": _settable(attributes, SUBSCRIPTION_ATTRIBUTES)})
    return found


def _drain(sqs, url: str) -> list[dict]:
    """Every visible message, oldest first, as SendMessageBatch entries (without Id)."""
    drained = []
    while True:
        batch = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=RECEIVE_BATCH, WaitTimeSeconds=0,
                                    VisibilityTimeout=3600, AttributeNames=["All"],
                                    MessageAttributeNames=["All"]).get("Messages", [])
        if not batch:
            return drained
        for message in batch:
            entry = {"MessageBody": message["Body"]}
            if message.get("MessageAttributes"):
                entry["MessageAttributes"] = message["MessageAttributes"]
            for key in ("MessageGroupId", "MessageDeduplicationId"):  # FIFO queues
                if message.get("Attributes", {}).get(key):
                    entry[key] = message["Attributes"][key]
            drained.append(entry)


def _settable(attributes: Mapping[str, str], names: Iterable[str]) -> dict[str, str]:
    return {name: attributes[name] for name in names if attributes.get(name) not in (None, "")}


# --- CloudWatch metric data --------------------------------------------------------------------


class MetricJournal:
    """Datums as stored in CloudWatch, one JSON line each: `{"Namespace", "Datum"}`, Timestamp
    in ISO-8601. Appended as data arrives, so a crash loses nothing already stored."""

    FILE = "metric-data.jsonl"
    _lock = threading.Lock()  # one for every journal: writes are a few per simulated hour

    def __init__(self, folder: Path) -> None:
        self.path = Path(folder) / self.FILE

    def append(self, namespace: str, data: Iterable[Mapping]) -> None:
        lines = b"".join(
            json.dumps({"Namespace": namespace, "Datum": {**datum, "Timestamp": datum["Timestamp"].isoformat()}},
                       separators=(",", ":")).encode() + b"\n"
            for datum in data
        )
        with self._lock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.path, "ab") as journal:
                journal.write(lines)

    def retained(self, since: datetime) -> dict[str, list[dict]]:
        """Datums stamped at or after `since`, by namespace; older lines are dropped from the file."""
        with self._lock:
            if not self.path.is_file():
                return {}
            kept_lines, by_namespace = [], {}
            for line in self.path.read_bytes().splitlines():
                if not line.strip():
                    continue
                entry = json.loads(line)
                datum = {**entry["Datum"], "Timestamp": datetime.fromisoformat(entry["Datum"]["Timestamp"])}
                if datum["Timestamp"] < since:
                    continue
                kept_lines.append(line + b"\n")
                by_namespace.setdefault(entry["Namespace"], []).append(datum)
            _write_atomically(self.path, b"".join(kept_lines))
            return by_namespace


# --- the clock ----------------------------------------------------------------------------------


def save_clock(folder: Path, simulated: bool, now: datetime) -> None:
    """Record the stack's clock, so a restart on a simulated clock resumes where it stopped."""
    _write_atomically(Path(folder) / CLOCK, json.dumps({"simulated": simulated, "now": now.isoformat()}).encode())


def saved_simulated_time(folder: Path) -> datetime | None:
    """Where the stack's simulated clock stood when its state was last saved; None for a real clock or none saved."""
    try:
        saved = json.loads((Path(folder) / CLOCK).read_text())
    except (OSError, ValueError):
        return None
    return datetime.fromisoformat(saved["now"]) if saved.get("simulated") else None


# --- files ----------------------------------------------------------------------------------


def _load_manifest(folder: Path) -> dict:
    path = folder / MANIFEST
    return json.loads(path.read_text()) if path.is_file() else {}


def _write_atomically(path: Path, data: bytes) -> None:
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_bytes(data)
    os.replace(temporary, path)
