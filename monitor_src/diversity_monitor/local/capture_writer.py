"""The data capture writer: what SageMaker does with each invocation when capture is on.

Sample (InitialSamplingPercentage), encode each side as JSON, CSV or BASE64 by its content type,
buffer lines per hour folder, and write each buffer as one object at
`<dest>/<endpoint>/<variant>/yyyy/mm/dd/hh/<MM-SS-mmm>-<uuid>.jsonl` (capture.py has the format).
The settings are checked against the SageMaker API model, as CreateEndpointConfig would.
"""

from __future__ import annotations

import random
import threading
import uuid
from dataclasses import dataclass, field
from datetime import datetime

import orjson

from diversity_monitor import storage
from diversity_monitor.aws import service_schema
from diversity_monitor.capture.record import (
    CAPTURE_MODES,
    as_utc,
    build_record,
    capture_key,
    choose_encoding,
    media_type,
    payload_envelope,
)
from diversity_monitor.clock import hour_of


def _is_local(uri: str) -> bool:
    return not storage.is_s3(uri) and "://" not in uri


@dataclass
class _HourBuffer:
    first_record: datetime
    lines: list[bytes] = field(default_factory=list)


class CaptureWriter:
    """What SageMaker does for each invocation with capture on: sample, encode, buffer, write.

    Buffered records go out as one object per hour folder on `flush()`, or as soon as an hour's
    buffer holds `flush_at_records`. Thread-safe: the lock covers sampling and the buffers; the
    write itself happens outside it. A failed write raises (StorageError for S3) and keeps the
    records buffered for the next flush.
    """

    def __init__(
        self,
        destination_s3_uri: str,
        endpoint_name: str,
        variant_name: str,
        capture_options: set[str],
        json_content_types: list[str],
        csv_content_types: list[str],
        sampling_percentage: int,
        rng: random.Random | None = None,
        *,
        flush_at_records: int = 1000,
    ) -> None:
        config = {
            "InitialSamplingPercentage": sampling_percentage,
            # A local folder may stand in for S3 (benchmarks, offline tests); the rest is checked as the API would.
            "DestinationS3Uri": destination_s3_uri if not _is_local(destination_s3_uri) else "s3://local-folder/",
            "CaptureOptions": [{"CaptureMode": mode} for mode in sorted(capture_options)],
        }
        header = {"JsonContentTypes": list(json_content_types), "CsvContentTypes": list(csv_content_types)}
        header = {key: value for key, value in header.items() if value}  # the API rejects empty lists
        if header:
            config["CaptureContentTypeHeader"] = header
        service_schema.validate_shape("sagemaker", "DataCaptureConfig", config, "DataCaptureConfig")
        service_schema.validate_shape("sagemaker", "EndpointName", endpoint_name, "endpoint name")
        service_schema.validate_shape("sagemaker", "VariantName", variant_name, "variant name")
        if not (storage.is_s3(destination_s3_uri) or _is_local(destination_s3_uri)):
            raise service_schema.RequestInvalid(
                f"DestinationS3Uri {destination_s3_uri!r}: the kit writes s3:// URIs (or a local folder), "
                "not the https:// form the API also accepts"
            )
        if flush_at_records < 1:
            raise ValueError(f"flush_at_records must be at least 1, got {flush_at_records}")
        self.destination = destination_s3_uri.rstrip("/")
        self.endpoint_name, self.variant_name = endpoint_name, variant_name
        self.modes = {mode for option in capture_options for mode in CAPTURE_MODES[option]}
        self.json_types = frozenset(filter(None, map(media_type, json_content_types)))
        self.csv_types = frozenset(filter(None, map(media_type, csv_content_types)))
        self.sampling_percentage = sampling_percentage
        self.flush_at_records = flush_at_records
        self._rng = rng or random.Random()
        self._lock = threading.Lock()
        self._buffers: dict[datetime, _HourBuffer] = {}

    @classmethod
    def from_data_capture_config(
        cls, config: dict, endpoint_name: str, variant_name: str, rng: random.Random | None = None, **options
    ) -> CaptureWriter | None:
        """A writer for an EndpointConfig's `DataCaptureConfig`; None when EnableCapture is false."""
        service_schema.validate_shape("sagemaker", "DataCaptureConfig", config, "DataCaptureConfig")
        if config.get("EnableCapture") is False:
            return None
        header = config.get("CaptureContentTypeHeader", {})
        return cls(
            config["DestinationS3Uri"], endpoint_name, variant_name,
            {option["CaptureMode"] for option in config["CaptureOptions"]},
            header.get("JsonContentTypes", []), header.get("CsvContentTypes", []),
            config["InitialSamplingPercentage"], rng, **options,
        )

    def capture(
        self,
        input_body: bytes,
        input_content_type: str | None,
        output_body: bytes,
        output_content_type: str | None,
        inference_time: datetime,
        inference_id: str | None,
        custom_attributes: str | None = None,
    ) -> bool:
        """Record one invocation; False when sampled out."""
        with self._lock:
            sampled = self._rng.randrange(100) < self.sampling_percentage
        if not sampled:
            return False
        record = build_record(
            event_id=str(uuid.uuid4()),
            inference_time=inference_time,
            endpoint_input=self._envelope("Input", "INPUT", input_body, input_content_type),
            endpoint_output=self._envelope("Output", "OUTPUT", output_body, output_content_type),
            inference_id=inference_id,
            custom_attributes=custom_attributes,
        )
        line = orjson.dumps(record)
        hour = hour_of(inference_time)
        with self._lock:
            buffer = self._buffers.get(hour)
            if buffer is None:
                buffer = self._buffers[hour] = _HourBuffer(as_utc(inference_time))
            buffer.lines.append(line)
            full = self._buffers.pop(hour) if len(buffer.lines) >= self.flush_at_records else None
        if full is not None:
            self._write({hour: full})
        return True

    def flush(self) -> list[str]:
        """Write every buffered hour; returns the URIs written, oldest hour first."""
        with self._lock:
            buffers, self._buffers = self._buffers, {}
        return self._write(buffers)

    def __enter__(self) -> CaptureWriter:
        return self

    def __exit__(self, *exc_info) -> None:
        self.flush()

    def _envelope(self, option: str, mode: str, body: bytes, content_type: str | None) -> dict | None:
        if option not in self.modes:
            return None
        encoding = choose_encoding(content_type, self.json_types, self.csv_types)
        return payload_envelope(mode, bytes(body), content_type, encoding)

    def _write(self, buffers: dict[datetime, _HourBuffer]) -> list[str]:
        """One object per hour; on a failed write the unwritten buffers go back (a later flush
        retries them) and the StorageError propagates: capture is never dropped silently."""
        written, pending = [], sorted(buffers)
        try:
            while pending:
                buffer = buffers[pending[0]]
                uri = capture_key(self.destination, self.endpoint_name, self.variant_name, buffer.first_record,
                                  str(uuid.uuid4()))
                storage.write_bytes(uri, b"\n".join(buffer.lines) + b"\n")
                written.append(uri)
                pending.pop(0)
        finally:
            if pending:
                with self._lock:
                    for hour in pending:
                        newer = self._buffers.get(hour)
                        if newer is not None:
                            buffers[hour].lines += newer.lines
                        self._buffers[hour] = buffers[hour]
        return written
