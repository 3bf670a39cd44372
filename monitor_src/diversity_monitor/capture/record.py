"""SageMaker data capture, the format: records, payload encodings, parsing, object keys.

Where capture lives is source.py; reading it is reader.py. Writing it is the platform's job: the
local stack's stand-in writer is `local/capture_writer.py`, built on the same record format.

As platform-facts.md ("Data capture") describes it, one JSON object a line:

    {"captureData": {"endpointInput": {"observedContentType": ..., "mode": "INPUT", "data": ..., "encoding": ...},
                     "endpointOutput": {"observedContentType": ..., "mode": "OUTPUT", "data": ..., "encoding": ...}},
     "eventMetadata": {"eventId": ..., "inferenceId": ..., "inferenceTime": "2024-05-01T10:11:12Z",
                       "customAttributes": ...},
     "eventVersion": "0"}

`encoding` is JSON, CSV or BASE64 and `data` is always a string. A body whose content type is
in the configured JSON (CSV) list is stored as its text with encoding JSON (CSV); any other body,
including one sent without a content type (`observedContentType: null`), is base64-encoded.
Content types are compared by media type, ignoring parameters and case: AWS's documented sample
captures `text/csv; charset=utf-8` as CSV with `text/csv` configured.

Objects: `<DestinationS3Uri>/<Endpoint>/<Variant>/yyyy/mm/dd/hh/<MM-SS-mmm>-<uuid>.jsonl`, hh the
hour of the invocation, MM-SS-mmm the minute, second and millisecond of the file's first record.
"""

from __future__ import annotations

import base64
import binascii
import re
from datetime import datetime, timezone
from typing import Literal, NamedTuple, get_args

import msgspec
import orjson

from diversity_monitor import storage
from diversity_monitor.clock import as_utc
from diversity_monitor.conventions import hour_path

EVENT_VERSION = "0"
CAPTURE_MODES = {"Input": ("Input",), "Output": ("Output",), "InputAndOutput": ("Input", "Output")}
_HOUR_KEY = re.compile(r"(?:^|/)(\d{4})/(\d{2})/(\d{2})/(\d{2})/([^/]+\.jsonl)$")


class MalformedRecord(ValueError):
    """A capture line that is not a record as documented; `kind` is a short stable code."""

    def __init__(self, kind: str, detail: str) -> None:
        super().__init__(f"{kind}: {detail}")
        self.kind = kind
        self.detail = detail


class Location(NamedTuple):
    file: str
    line: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}"


class CapturedPayload(NamedTuple):
    body: bytes  # decoded: the bytes the caller sent or the model returned
    content_type: str | None  # observedContentType
    encoding: str

    def json(self) -> object:
        return orjson.loads(self.body)


class CapturedEvent(NamedTuple):
    input_payload: CapturedPayload | None
    output_payload: CapturedPayload | None
    inference_id: str | None
    event_id: str
    inference_time: datetime
    custom_attributes: str | None
    location: Location | None


# --- payload encodings: registries both ways ------------------------------------------------

def _text_data(body: bytes) -> str:
    return body.decode("utf-8")


def _base64_data(body: bytes) -> str:
    return base64.b64encode(body).decode("ascii")


def _from_text(data: str) -> bytes:
    return data.encode("utf-8")


def _from_base64(data: str) -> bytes:
    try:
        return base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError) as error:
        raise MalformedRecord("bad-base64", f"data is not valid base64 ({error})") from None


ENCODERS = {"JSON": _text_data, "CSV": _text_data, "BASE64": _base64_data}
DECODERS = {"JSON": _from_text, "CSV": _from_text, "BASE64": _from_base64}
TEXT_ENCODINGS = frozenset(name for name, decoder in DECODERS.items() if decoder is _from_text)


def media_type(content_type: str | None) -> str | None:
    """`Text/CSV; charset=utf-8` -> `text/csv`: the part content-type lists are matched on."""
    if content_type is None:
        return None
    return content_type.split(";", 1)[0].strip().lower() or None


def choose_encoding(content_type: str | None, json_types: frozenset[str], csv_types: frozenset[str]) -> str:
    kind = media_type(content_type)
    if kind in json_types:
        return "JSON"
    if kind in csv_types:
        return "CSV"
    return "BASE64"  # no content type, or one not configured as JSON or CSV


def payload_envelope(mode: str, body: bytes, content_type: str | None, encoding: str) -> dict:
    try:
        data = ENCODERS[encoding](body)
    except UnicodeDecodeError:
        # A JSON/CSV content type on a body that is not UTF-8 text cannot be stored as a JSON
        # string; base64 keeps it lossless and says so in `encoding`.
        encoding, data = "BASE64", _base64_data(body)
    return {"observedContentType": content_type, "mode": mode, "data": data, "encoding": encoding}


def format_inference_time(moment: datetime) -> str:
    """`2022-02-14T17:25:49Z`, second precision, as in AWS's documented capture samples."""
    return as_utc(moment).replace(tzinfo=None).isoformat(timespec="seconds") + "Z"  # strftime is 5x slower


def parse_inference_time(text: object) -> datetime:
    if not isinstance(text, str):
        raise MalformedRecord("bad-field-type", f"eventMetadata.inferenceTime is {_type(text)}, expected a string")
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise MalformedRecord("bad-timestamp", f"eventMetadata.inferenceTime {text[:40]!r} is not ISO-8601") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def build_record(
    *,
    event_id: str,
    inference_time: datetime,
    endpoint_input: dict | None = None,
    endpoint_output: dict | None = None,
    inference_id: str | None = None,
    custom_attributes: str | None = None,
) -> dict:
    capture = {}
    if endpoint_input is not None:
        capture["endpointInput"] = endpoint_input
    if endpoint_output is not None:
        capture["endpointOutput"] = endpoint_output
    metadata = {"eventId": event_id}
    if inference_id is not None:
        metadata["inferenceId"] = inference_id
    metadata["inferenceTime"] = format_inference_time(inference_time)
    if custom_attributes is not None:
        metadata["customAttributes"] = custom_attributes
    return {"captureData": capture, "eventMetadata": metadata, "eventVersion": EVENT_VERSION}


# --- parsing ----------------------------------------------------------------------------------
#
# A line becomes the Structs below one of two ways:
# - `typed_record_decoder()` decodes it straight into them: msgspec checks every member's presence,
#   type and (by Literal) value in C, so no Python check runs per record. This is the hot path
#   (18 million lines an hour) and it is narrow on purpose: no unknown member anywhere, because a
#   member msgspec skips escapes the checks orjson applies (1e400, bytes that are not UTF-8).
# - `check_record` is the definition: it checks an orjson-decoded line member by member, names the
#   problem with a stable `kind`, and accepts the valid shapes the Structs refuse (extra members).
# A line the decoder refuses is not necessarily malformed: readers re-read it with `load_line` +
# `check_record`, which gives the verdict. Two definitions, because one runs in C and the other
# names problems; tests/test_capture_typed.py holds them together on every one-member mutation of
# a record (the decoder never accepts what check_record refuses, and both read the same values).

_Encoding = Literal["JSON", "CSV", "BASE64"]  # the keys of DECODERS, checked at import below
_Version = Literal["0"]  # EVENT_VERSION
if set(get_args(_Encoding)) != set(DECODERS) or get_args(_Version) != (EVENT_VERSION,):
    raise ImportError("capture.py: the typed record's Literals disagree with DECODERS / EVENT_VERSION")


class InputEnvelope(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    mode: Literal["INPUT"]
    data: str
    encoding: _Encoding
    observedContentType: str | None = None


class OutputEnvelope(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    mode: Literal["OUTPUT"]
    data: str
    encoding: _Encoding
    observedContentType: str | None = None


class CaptureData(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    endpointInput: InputEnvelope | None = None
    endpointOutput: OutputEnvelope | None = None


class EventMetadata(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    eventId: str
    inferenceTime: str  # a valid record's is ISO-8601: parse_inference_time
    inferenceId: str | None = None
    customAttributes: str | None = None


class CaptureRecord(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    """A capture line's record (`gc=False`: the Structs hold only strings)."""

    captureData: CaptureData
    eventMetadata: EventMetadata
    eventVersion: _Version


# What a refused line raises: msgspec's errors, UnicodeDecodeError for bytes that are not UTF-8,
# RecursionError for absurd nesting. None of them is a verdict; check_record gives it.
TYPED_DECODE_ERRORS = (msgspec.MsgspecError, ValueError, RecursionError)


def typed_record_decoder() -> msgspec.json.Decoder:
    """`decoder.decode(line)` -> CaptureRecord, raising one of TYPED_DECODE_ERRORS if it refuses.
    A record it returns still needs its inferenceTime and base64 payloads checked."""
    return msgspec.json.Decoder(CaptureRecord)


def load_line(line: bytes | str) -> object:
    try:
        return orjson.loads(line)
    except orjson.JSONDecodeError as error:
        kind = "empty-line" if not line.strip() else "invalid-json"
        raise MalformedRecord(kind, f"not valid JSON ({error})") from None


def check_record(record: object) -> tuple[CaptureRecord, datetime]:
    """A decoded line as a CaptureRecord with its inference time; MalformedRecord naming the first
    problem if it is not a record as documented (its base64 payloads are not checked here)."""
    if type(record) is not dict:
        raise MalformedRecord("not-an-object", f"a capture line must be a JSON object, got {_type(record)}")
    capture = _member(record, "captureData", dict, "")
    metadata = _member(record, "eventMetadata", dict, "")
    version = _member(record, "eventVersion", str, "")
    if version != EVENT_VERSION:
        raise MalformedRecord("unsupported-version", f"eventVersion {version!r}; only {EVENT_VERSION!r} is documented")
    endpoint_input = _checked_envelope(capture, "endpointInput", "INPUT", InputEnvelope)
    endpoint_output = _checked_envelope(capture, "endpointOutput", "OUTPUT", OutputEnvelope)
    if endpoint_input is None and endpoint_output is None:
        raise MalformedRecord("missing-field", "captureData has neither endpointInput nor endpointOutput")
    # Fields the kit does not use may hold any JSON value, or be absent (UNUSED_FIELDS).
    event_id = metadata.get("eventId")
    inference_id = _optional(metadata, "inferenceId", "eventMetadata.")
    custom_attributes = metadata.get("customAttributes")
    inference_time = _member(metadata, "inferenceTime", str, "eventMetadata.")
    moment = parse_inference_time(inference_time)
    checked = CaptureRecord(
        CaptureData(endpoint_input, endpoint_output),
        EventMetadata(event_id, inference_time, inference_id, custom_attributes),
        version,
    )
    return checked, moment


# What the kit reads from a record, and so what must have its documented type: the envelopes'
# `mode`, `encoding` and `data`, `eventMetadata.inferenceTime` (the window) and `inferenceId` (replay
# traffic is left out by its prefix). These it does not use, so any JSON value there is accepted
# (AWS's docs name customAttributes without typing it; AWS's LLM-monitoring example has a list of
# strings) and `unusual_shapes` reports the shapes met other than a string or absent.
UNUSED_FIELDS = ("eventMetadata.eventId", "eventMetadata.customAttributes",
                 "captureData.endpointInput.observedContentType", "captureData.endpointOutput.observedContentType")


def unusual_shapes(record: dict) -> list[str]:
    """`field: shape` for each UNUSED_FIELDS member of a decoded line that is neither a string nor
    absent/null (`eventMetadata.customAttributes: a list`), for capture-stats to report."""
    found = []
    for path in UNUSED_FIELDS:
        value: object = record
        for part in path.split("."):
            value = value.get(part) if type(value) is dict else None
        if value is not None and type(value) is not str:
            found.append(f"{path}: {_type(value)}")
    return found


def _checked_envelope(capture: dict, name: str, mode: str, struct: type):
    envelope = capture.get(name)
    if envelope is None:
        return None
    where = f"captureData.{name}."
    if type(envelope) is not dict:
        raise MalformedRecord("bad-field-type", f"captureData.{name} is {_type(envelope)}, expected an object")
    if _member(envelope, "mode", str, where) != mode:
        raise MalformedRecord("bad-field-value", f"{where}mode is {envelope['mode']!r}, expected {mode!r}")
    encoding = _member(envelope, "encoding", str, where)
    if encoding not in DECODERS:
        raise MalformedRecord("unknown-encoding", f"{where}encoding {encoding[:40]!r} is not one of {sorted(DECODERS)}")
    data = _member(envelope, "data", str, where)
    return struct(mode, data, encoding, envelope.get("observedContentType"))


def _member(container: dict, key: str, expected: type, where: str):
    try:
        value = container[key]
    except KeyError:
        raise MalformedRecord("missing-field", f"{where}{key} is missing") from None
    if type(value) is not expected:
        raise MalformedRecord("bad-field-type", f"{where}{key} is {_type(value)}, expected {_type(expected())}")
    return value


def _optional(container: dict, key: str, where: str) -> str | None:
    value = container.get(key)
    if value is not None and type(value) is not str:
        raise MalformedRecord("bad-field-type", f"{where}{key} is {_type(value)}, expected a string or null")
    return value


def decode_payload(envelope: InputEnvelope | OutputEnvelope) -> bytes:
    """The payload bytes of an envelope (MalformedRecord on bad base64)."""
    return DECODERS[envelope.encoding](envelope.data)


def payload_document(envelope: InputEnvelope | OutputEnvelope) -> str | bytes:
    """The payload as a JSON parser can read it: the text itself for JSON/CSV (no copy), else the
    decoded bytes (MalformedRecord on bad base64)."""
    return envelope.data if envelope.encoding in TEXT_ENCODINGS else decode_payload(envelope)


def captured_event(record: CaptureRecord, moment: datetime, location: Location | None = None) -> CapturedEvent:
    """A checked record with its payloads decoded (MalformedRecord on bad base64)."""
    metadata = record.eventMetadata
    return CapturedEvent(
        _decoded(record.captureData.endpointInput),
        _decoded(record.captureData.endpointOutput),
        metadata.inferenceId,
        metadata.eventId,
        moment,
        metadata.customAttributes,
        location,
    )


def parse_line(line: bytes | str, location: Location | None = None) -> CapturedEvent:
    """One line, by the definition (check_record); MalformedRecord if it is not a record."""
    return captured_event(*check_record(load_line(line)), location)


def _decoded(envelope: InputEnvelope | OutputEnvelope | None) -> CapturedPayload | None:
    if envelope is None:
        return None
    return CapturedPayload(decode_payload(envelope), envelope.observedContentType, envelope.encoding)


def _type(value: object) -> str:
    names = {dict: "an object", list: "a list", str: "a string", bool: "a boolean", type(None): "null",
             int: "a number", float: "a number"}
    return names.get(type(value), f"a {type(value).__name__}")


# --- object keys ------------------------------------------------------------------------------

def capture_key(destination: str, endpoint: str, variant: str, first_record: datetime, file_id: str) -> str:
    moment = as_utc(first_record)
    name = f"{moment:%M-%S}-{moment.microsecond // 1000:03d}-{file_id}.jsonl"
    return storage.join(destination, endpoint, variant, hour_path(moment), name)


def capture_hour(uri: str) -> datetime | None:
    """The hour folder of a capture object (`.../yyyy/mm/dd/hh/<file>.jsonl`), or None."""
    match = _HOUR_KEY.search(uri)
    if match is None:
        return None
    year, month, day, hour = (int(part) for part in match.groups()[:4])
    try:
        return datetime(year, month, day, hour, tzinfo=timezone.utc)
    except ValueError:
        return None
