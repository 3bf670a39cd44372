"""Data capture for a live endpoint: `CaptureWriter`s whose files are delivered to S3.

Each deployment of an endpoint config with `DataCaptureConfig` gets one writer per variant. The
writers write into a spool folder under the state dir (the writer's own key layout:
`<Endpoint>/<Variant>/yyyy/mm/dd/hh/<MM-SS-mmm>-<uuid>.jsonl`), and `flush()` uploads every
spooled file to the same key under `DestinationS3Uri` in the stack's S3, then deletes it. The
stack calls `flush()` at every clock tick and at stop, so captures land within the minute, as
on SageMaker ("delivery can lag a couple of minutes"). A failed upload leaves the file in the
spool for the next flush; a spool left by a crash is delivered at the next start.
"""

from __future__ import annotations

import json
import logging
import shutil
import sys
import threading
import uuid
from pathlib import Path

from diversity_monitor import storage
from diversity_monitor.local.capture_writer import CaptureWriter

log = logging.getLogger(__name__)

SPOOL = "capture-spool"
_DESTINATION_FILE = "destination.json"


class CaptureDelivery:
    def __init__(self, platform, endpoint_name: str, data_capture_config: dict, variant_names: list[str], rng=None) -> None:
        self._s3 = platform.aws_client("s3")
        self.destination = storage.S3Location.parse(data_capture_config["DestinationS3Uri"].rstrip("/") + "/")
        self.spool = platform.state_dir / SPOOL / f"{endpoint_name}-{uuid.uuid4().hex[:12]}"
        self._data = self.spool / "data"
        self._data.mkdir(parents=True)
        (self.spool / _DESTINATION_FILE).write_text(json.dumps({"DestinationS3Uri": data_capture_config["DestinationS3Uri"]}))
        header = data_capture_config.get("CaptureContentTypeHeader", {})
        self.sampling_percentage = data_capture_config["InitialSamplingPercentage"]
        self._writers = {
            variant: CaptureWriter(
                str(self._data),
                endpoint_name,
                variant,
                {option["CaptureMode"] for option in data_capture_config["CaptureOptions"]},
                header.get("JsonContentTypes", []),
                header.get("CsvContentTypes", []),
                self.sampling_percentage,
                rng,
                flush_at_records=sys.maxsize,  # files appear only in flush(), so an upload never sees half a file
            )
            for variant in variant_names
        }
        self._lock = threading.Lock()

    def writer(self, variant_name: str) -> CaptureWriter | None:
        return self._writers.get(variant_name)

    def flush(self) -> int:
        """Write buffered captures and upload every spooled file; returns the files delivered."""
        with self._lock:
            for writer in self._writers.values():
                writer.flush()
            return _upload(self._s3, self._data, self.destination)

    def close(self) -> None:
        self.flush()
        with self._lock:
            if not any(path.is_file() for path in self._data.rglob("*")):
                shutil.rmtree(self.spool, ignore_errors=True)


def _upload(s3, folder: Path, destination: storage.S3Location) -> int:
    delivered = 0
    for path in sorted(item for item in folder.rglob("*") if item.is_file()):
        key = destination.key + path.relative_to(folder).as_posix()
        try:
            s3.put_object(Bucket=destination.bucket, Key=key, Body=path.read_bytes())
        except Exception as error:  # kept for the next flush; SageMaker too keeps trying to deliver
            log.error("cannot deliver capture file to s3://%s/%s (will retry): %s", destination.bucket, key, error)
            continue
        path.unlink()
        delivered += 1
    return delivered


def deliver_leftovers(platform) -> int:
    """Upload what a previous run spooled but did not deliver (a crash between ticks)."""
    delivered = 0
    root = platform.state_dir / SPOOL
    for spool in sorted(root.iterdir()) if root.is_dir() else []:
        marker = spool / _DESTINATION_FILE
        if not marker.is_file():
            continue
        destination = storage.S3Location.parse(json.loads(marker.read_text())["DestinationS3Uri"].rstrip("/") + "/")
        delivered += _upload(platform.aws_client("s3"), spool / "data", destination)
        if not any(path.is_file() for path in (spool / "data").rglob("*")):
            shutil.rmtree(spool, ignore_errors=True)
    return delivered
