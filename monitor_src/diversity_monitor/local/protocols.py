"""AWS wire protocols, server side: identify, parse and validate requests, serialize answers.

Everything here is driven by botocore's service models (`botocore/data/<service>/.../service-2.json`),
the same models boto3 uses on the client side, so what a boto3 client sends parses here and what
this module writes a boto3 client parses. One codec per protocol, in `CODECS`:

- `json` (SageMaker): the operation is in `X-Amz-Target`; errors are `{"__type", "message"}`.
- `rest-json` (SageMaker Runtime): the operation is the method + URI template; members travel
  in the URI, headers, query string or body as each member's `location` says.
- `smithy-rpc-v2-cbor` (CloudWatch's first protocol in its current model; botocore 1.44 itself
  prefers `json` there): the operation is in the path, CBOR bodies; services that used to speak
  `query` also get `x-amzn-query-error` on errors.
- `query` (CloudWatch for older clients: AWS CLI v1, boto3 before CloudWatch's JSON protocol):
  `Action=<Operation>` in a form body, XML answers.

A request is validated against the operation's input shape twice over: botocore's own
ParamValidator (required members, types, minimums, unknown members), then the constraints the
model carries that ParamValidator leaves to the service (maximums, enums, patterns), reported in
the service's own words ("1 validation error detected: Value ... at ... failed to satisfy
constraint: ...").
"""

from __future__ import annotations

import base64
import binascii
import functools
import json
import math
import os
import re
import struct
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from urllib.parse import parse_qsl, unquote
from xml.etree import ElementTree

import botocore.session
from botocore.model import OperationModel, ServiceModel, Shape
from botocore.parsers import RpcV2CBORParser
from botocore.utils import parse_timestamp
from botocore.validate import ParamValidator

from diversity_monitor.aws.service_schema import request_problem
from diversity_monitor.local import errors


@dataclass(frozen=True)
class WireRequest:
    method: str
    path: str  # as sent: percent-encoded
    query: str
    headers: Mapping[str, str]  # case-insensitive mapping
    body: bytes


@dataclass
class WireResponse:
    status: int
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""


def isolated_botocore_session() -> botocore.session.Session:
    """A botocore session that takes no profile from AWS_PROFILE and reads no config or
    credentials file: the stack loads models and builds its own clients (with explicit endpoint,
    region and credentials, which beat any AWS_ENDPOINT_URL_* or credential variable) the same
    way whatever shell it was started from. (A missing AWS_PROFILE alone makes botocore refuse
    to load even a service model.)"""
    session = botocore.session.Session(session_vars={"profile": (None, None, None, None)})
    session.set_config_variable("config_file", os.devnull)
    session.set_config_variable("credentials_file", os.devnull)
    return session


@functools.cache
def _models() -> botocore.session.Session:
    return isolated_botocore_session()


@functools.cache
def service_model(service_name: str) -> ServiceModel:
    return _models().get_service_model(service_name)


def botocore_data(name: str):
    """botocore's bundled data (e.g. "endpoints"), loaded as `service_model` loads models."""
    return _models().get_data(name)


def protocols_of(model: ServiceModel) -> list[str]:
    """Every protocol a client of this service may speak (newer models list several)."""
    return list(model.metadata.get("protocols") or [model.metadata["protocol"]])


def _request_id() -> str:
    return str(uuid.uuid4())


class SerializationError(errors.ServiceError):
    """A body that is not what the protocol says (not JSON, a blob that is not base64...)."""

    code = "SerializationException"
    status = 400


# --- value conversion between wire form and Python (registries by shape type) ---------------

def _decode_timestamp(value, shape):
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        return value  # the validator reports the wrong type
    try:
        return parse_timestamp(value)
    except (ValueError, TypeError, OverflowError):
        raise SerializationError(f"{value!r} is not a timestamp (epoch seconds or ISO-8601)") from None


def _decode_blob(value, shape):
    if not isinstance(value, str):
        return value
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise SerializationError(f"a blob member holds {value[:40]!r}, which is not base64") from None


# JSON has no NaN or Infinity: AWS's JSON protocols send these floats as strings (botocore's
# serializers do, and its parsers read them back).
_SPECIAL_FLOATS = {"NaN": float("nan"), "Infinity": float("inf"), "-Infinity": float("-inf")}


def _decode_float(value, shape):
    return _SPECIAL_FLOATS.get(value, value) if isinstance(value, str) else value


def _encode_float(value, shape):
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    return value


_JSON_DECODERS: dict[str, Callable] = {
    "structure": lambda value, shape: (
        {key: decode_json(item, shape.members.get(key)) for key, item in value.items()}
        if isinstance(value, dict) else value
    ),
    "list": lambda value, shape: [decode_json(item, shape.member) for item in value] if isinstance(value, list) else value,
    "map": lambda value, shape: (
        {key: decode_json(item, shape.value) for key, item in value.items()} if isinstance(value, dict) else value
    ),
    "timestamp": _decode_timestamp,
    "blob": _decode_blob,
    "float": _decode_float,
    "double": _decode_float,
}


def decode_json(value, shape: Shape | None):
    """A JSON-protocol value -> Python (timestamps to datetime, blobs to bytes). Unknown members
    are kept, so the validator can name them."""
    if shape is None or value is None:
        return value
    decoder = _JSON_DECODERS.get(shape.type_name)
    return decoder(value, shape) if decoder else value


def to_datetime(value) -> datetime:
    """A stored timestamp (datetime, ISO-8601 string or epoch seconds) as an aware datetime."""
    moment = value if isinstance(value, datetime) else parse_timestamp(value)
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


_JSON_ENCODERS: dict[str, Callable] = {
    "structure": lambda value, shape: {
        key: encode_json(item, shape.members.get(key)) for key, item in value.items() if item is not None
    },
    "list": lambda value, shape: [encode_json(item, shape.member) for item in value],
    "map": lambda value, shape: {key: encode_json(item, shape.value) for key, item in value.items()},
    "timestamp": lambda value, shape: to_datetime(value).timestamp(),  # epoch seconds, as AWS sends
    "blob": lambda value, shape: base64.b64encode(value).decode("ascii"),
    "float": _encode_float,
    "double": _encode_float,
}


def encode_json(value, shape: Shape | None):
    """Python -> JSON-protocol value. Timestamps may be datetimes or ISO strings (as stored)."""
    if shape is None or value is None:
        return value
    encoder = _JSON_ENCODERS.get(shape.type_name)
    return encoder(value, shape) if encoder else value


# --- validation -------------------------------------------------------------------------------

def validate(params: dict, operation: OperationModel, error_class: type[errors.ServiceError]) -> None:
    """Raise `error_class` unless `params` is a request the service model accepts (service_schema's check)."""
    problem = request_problem(params, operation)
    if problem:
        raise error_class(problem)


def check_output(result: dict, operation: OperationModel) -> None:
    """A handler's answer must fit the output shape; a misfit is our bug, reported as one."""
    shape = operation.output_shape
    if shape is None:
        return
    report = ParamValidator().validate(result, shape)
    if report.has_errors():
        raise errors.ServiceError(f"local stack bug: {operation.name} answered outside its output shape: {report.generate_report()}")


@functools.cache
def validation_error_for(service_name: str) -> type[errors.ServiceError]:
    """The error a service answers invalid requests with: the one it models (SageMaker Runtime's
    `ValidationError`, CloudWatch's `ValidationException`), else the common `ValidationException`."""
    names = {shape.name for shape in service_model(service_name).error_shapes}
    for name in ("ValidationError", "ValidationException"):
        if name in names:
            return type(name, (errors.ValidationError,), {"code": name})
    return errors.ValidationError


def _query_error_code(error: errors.ServiceError, model: ServiceModel) -> str:
    """The code the query protocol uses for an error: the modelled shape's `error.code`
    (CloudWatch's `InvalidParameterValueException` is `InvalidParameterValue` on the wire)."""
    shape = next((shape for shape in model.error_shapes if shape.name == error.code), None)
    return (shape.metadata.get("error") or {}).get("code", error.code) if shape is not None else error.code


def _fault(error: errors.ServiceError) -> str:
    return "Sender" if error.status < 500 else "Receiver"


def _query_compatible_headers(error: errors.ServiceError, model: ServiceModel) -> list[tuple[str, str]]:
    """Services that used to speak the query protocol (CloudWatch) also send the old error code:
    `x-amzn-query-error: <code>;<Sender|Receiver>`, which botocore reports as the error code."""
    if "awsQueryCompatible" not in model.metadata:
        return []
    return [("x-amzn-query-error", f"{_query_error_code(error, model)};{_fault(error)}")]


# --- codecs -----------------------------------------------------------------------------------

class JsonCodec:
    """awsJson1.0/1.1: POST /, `X-Amz-Target: <prefix>.<Operation>`, JSON body both ways."""

    def operation(self, request: WireRequest, model: ServiceModel) -> tuple[str, dict] | None:
        target = request.headers.get("x-amz-target", "")
        prefix, _, name = target.rpartition(".")
        if request.method != "POST" or prefix != model.metadata.get("targetPrefix"):
            return None
        return (name, {}) if name in model.operation_names else None

    def known_operation(self, request: WireRequest, model: ServiceModel) -> str | None:
        """The operation name a request asks for, whether or not the model has it."""
        target = request.headers.get("x-amz-target", "")
        prefix, _, name = target.rpartition(".")
        return name if prefix and prefix == model.metadata.get("targetPrefix") else None

    def parse(self, request: WireRequest, operation: OperationModel, captures: dict) -> dict:
        if not request.body.strip():
            return {}
        try:
            value = json.loads(request.body)
        except (ValueError, UnicodeDecodeError) as error:
            raise SerializationError(f"request body is not valid JSON: {error}") from None
        if not isinstance(value, dict):
            raise SerializationError(f"request body must be a JSON object, got {type(value).__name__}")
        return decode_json(value, operation.input_shape)

    def _content_type(self, model: ServiceModel) -> str:
        return f"application/x-amz-json-{model.metadata.get('jsonVersion', '1.0')}"

    def serialize(self, result: dict, operation: OperationModel) -> WireResponse:
        body = encode_json(result, operation.output_shape) if operation.output_shape else {}
        return WireResponse(
            200,
            [("Content-Type", self._content_type(operation.service_model)), ("x-amzn-RequestId", _request_id())],
            json.dumps(body).encode(),
        )

    def error(self, error: errors.ServiceError, model: ServiceModel) -> WireResponse:
        headers = {**error.headers(), "Content-Type": self._content_type(model), "x-amzn-RequestId": _request_id()}
        return WireResponse(
            error.status, [*headers.items(), *_query_compatible_headers(error, model)], json.dumps(error.body()).encode()
        )


_URI_LABEL = re.compile(r"\{([^}]+)\}")


@functools.cache
def _uri_matchers(service_name: str) -> list[tuple[str, str, re.Pattern]]:
    """(method, operation, regex) per operation, from the model's request URI templates."""
    model = service_model(service_name)
    matchers = []
    for name in model.operation_names:
        http = model.operation_model(name).http
        template = http["requestUri"].split("?", 1)[0]
        regex, position = "", 0
        for label in _URI_LABEL.finditer(template):
            regex += re.escape(template[position:label.start()])
            greedy = label.group(1).endswith("+")
            group = label.group(1).rstrip("+")
            regex += f"(?P<{group}>.+)" if greedy else f"(?P<{group}>[^/]+)"
            position = label.end()
        regex += re.escape(template[position:])
        matchers.append((http["method"], name, re.compile(regex + "/?")))
    return matchers


_HEADER_DECODERS: dict[str, Callable[[str], object]] = {
    "string": str,
    "integer": int,
    "long": int,
    "boolean": lambda text: text.lower() == "true",
    "timestamp": parse_timestamp,
}


class RestJsonCodec:
    """REST-JSON: the operation is the URI template; members by `location`; payload as modelled."""

    def operation(self, request: WireRequest, model: ServiceModel) -> tuple[str, dict] | None:
        for method, name, regex in _uri_matchers(model.service_name):
            match = regex.fullmatch(request.path) if method == request.method else None
            if match:
                return name, {key: unquote(value) for key, value in match.groupdict().items()}
        return None

    def known_operation(self, request: WireRequest, model: ServiceModel) -> str | None:
        return None  # a URI that matches no template names no operation

    def parse(self, request: WireRequest, operation: OperationModel, captures: dict) -> dict:
        shape = operation.input_shape
        if shape is None:
            return {}
        params: dict = {}
        query = dict(parse_qsl(request.query, keep_blank_values=True))
        payload = shape.serialization.get("payload")
        body_members = {}
        for name, member in shape.members.items():
            location = member.serialization.get("location")
            wire_name = member.serialization.get("name", name)
            if location == "uri":
                if wire_name in captures:
                    params[name] = captures[wire_name]
            elif location == "header":
                if wire_name in request.headers:
                    params[name] = self._header_value(request.headers[wire_name], member, name)
            elif location == "querystring":
                if wire_name in query:
                    params[name] = self._header_value(query[wire_name], member, name)
            elif name != payload:
                body_members[name] = member
        if payload:
            member = shape.members[payload]
            if member.type_name in ("blob", "string"):
                params[payload] = request.body if member.type_name == "blob" else request.body.decode("utf-8")
            elif request.body:
                params[payload] = decode_json(self._json(request.body), member)
        elif body_members and request.body:
            document = self._json(request.body)
            params.update({key: decode_json(value, body_members.get(key)) for key, value in document.items()})
        return params

    def _header_value(self, text: str, member: Shape, name: str):
        convert = _HEADER_DECODERS.get(member.type_name, str)
        try:
            return convert(text)
        except (ValueError, TypeError):
            raise SerializationError(f"{name} {text!r} is not a valid {member.type_name}") from None

    def _json(self, body: bytes) -> dict:
        try:
            document = json.loads(body)
        except (ValueError, UnicodeDecodeError) as error:
            raise SerializationError(f"request body is not valid JSON: {error}") from None
        if not isinstance(document, dict):
            raise SerializationError(f"request body must be a JSON object, got {type(document).__name__}")
        return document

    def serialize(self, result: dict, operation: OperationModel) -> WireResponse:
        shape = operation.output_shape
        status = operation.http.get("responseCode", 200)
        headers = [("x-amzn-RequestId", _request_id())]
        body = b""
        if shape is not None:
            payload = shape.serialization.get("payload")
            document = {}
            for name, value in result.items():
                member = shape.members.get(name)
                if value is None or member is None:
                    continue
                location = member.serialization.get("location")
                if location == "header":
                    headers.append((member.serialization.get("name", name), self._header_text(value)))
                elif location == "statusCode":
                    status = int(value)
                elif name == payload:
                    body = value if isinstance(value, bytes) else json.dumps(encode_json(value, member)).encode()
                else:
                    document[name] = encode_json(value, member)
            if not payload:
                body = json.dumps(document).encode()
                headers.append(("Content-Type", "application/json"))
        return WireResponse(status, headers, body)

    def _header_text(self, value) -> str:
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, datetime):
            return value.strftime("%a, %d %b %Y %H:%M:%S GMT")
        return str(value)

    def error(self, error: errors.ServiceError, model: ServiceModel) -> WireResponse:
        headers = {**error.headers(), "Content-Type": "application/json", "x-amzn-RequestId": _request_id()}
        return WireResponse(error.status, list(headers.items()), json.dumps(error.body()).encode())


# --- CBOR (RFC 8949), the subset Smithy RPC v2 uses ------------------------------------------

def _cbor_head(major: int, length: int) -> bytes:
    if length < 24:
        return bytes([major << 5 | length])
    for info, size in ((24, 1), (25, 2), (26, 4), (27, 8)):
        if length < 1 << (8 * size):
            return bytes([major << 5 | info]) + length.to_bytes(size, "big")
    raise ValueError(f"{length} does not fit a CBOR length")


def _cbor_int(value: int) -> bytes:
    return _cbor_head(0, value) if value >= 0 else _cbor_head(1, -1 - value)


_CBOR_ENCODERS: dict[type, Callable[[object], bytes]] = {
    bool: lambda value: b"\xf5" if value else b"\xf4",
    int: _cbor_int,
    float: lambda value: b"\xfb" + struct.pack(">d", value),
    str: lambda value: _cbor_head(3, len(value.encode("utf-8"))) + value.encode("utf-8"),
    bytes: lambda value: _cbor_head(2, len(value)) + value,
    list: lambda value: _cbor_head(4, len(value)) + b"".join(encode_cbor(item) for item in value),
    dict: lambda value: _cbor_head(5, len(value)) + b"".join(encode_cbor(k) + encode_cbor(v) for k, v in value.items()),
    datetime: lambda value: b"\xc1" + b"\xfb" + struct.pack(">d", to_datetime(value).timestamp()),  # tag 1: epoch
    type(None): lambda value: b"\xf6",
}


def encode_cbor(value) -> bytes:
    encoder = _CBOR_ENCODERS.get(type(value))
    if encoder is None:
        raise TypeError(f"cannot encode a {type(value).__name__} as CBOR")
    return encoder(value)


_TIMESTAMPS_TO_DATETIME: dict[str, Callable] = {
    "structure": lambda value, shape: {
        key: with_datetimes(item, shape.members.get(key)) for key, item in value.items() if item is not None
    },
    "list": lambda value, shape: [with_datetimes(item, shape.member) for item in value],
    "map": lambda value, shape: {key: with_datetimes(item, shape.value) for key, item in value.items()},
    "timestamp": lambda value, shape: to_datetime(value),
}


def with_datetimes(value, shape: Shape | None):
    """Stored values (ISO-string timestamps) -> values with datetimes where the shape has timestamps."""
    if shape is None or value is None:
        return value
    convert = _TIMESTAMPS_TO_DATETIME.get(shape.type_name)
    return convert(value, shape) if convert else value


class CborCodec:
    """Smithy RPC v2 CBOR (CloudWatch in current botocore): POST
    /service/<targetPrefix>/operation/<Operation>, `smithy-protocol: rpc-v2-cbor`, CBOR bodies."""

    _cbor = RpcV2CBORParser()

    def operation(self, request: WireRequest, model: ServiceModel) -> tuple[str, dict] | None:
        prefix = f"/service/{model.metadata.get('targetPrefix')}/operation/"
        if request.method != "POST" or request.headers.get("smithy-protocol") != "rpc-v2-cbor" or not request.path.startswith(prefix):
            return None
        name = request.path[len(prefix):]
        return (name, {}) if name in model.operation_names else None

    def known_operation(self, request: WireRequest, model: ServiceModel) -> str | None:
        return None

    def parse(self, request: WireRequest, operation: OperationModel, captures: dict) -> dict:
        if not request.body:
            return {}
        try:
            value = self._cbor.parse_data_item(self._cbor.get_peekable_stream_from_bytes(request.body))
        except Exception as error:  # botocore raises assorted errors on malformed CBOR
            raise SerializationError(f"request body is not valid CBOR: {error}") from None
        if not isinstance(value, dict):
            raise SerializationError(f"request body must be a CBOR map, got {type(value).__name__}")
        return value

    def _headers(self) -> list[tuple[str, str]]:
        return [("smithy-protocol", "rpc-v2-cbor"), ("Content-Type", "application/cbor"), ("x-amzn-RequestId", _request_id())]

    def serialize(self, result: dict, operation: OperationModel) -> WireResponse:
        body = with_datetimes(result, operation.output_shape) if operation.output_shape else {}
        return WireResponse(200, self._headers(), encode_cbor(body))

    def error(self, error: errors.ServiceError, model: ServiceModel) -> WireResponse:
        body = {key: value for key, value in error.body().items() if key != "Message"}
        return WireResponse(error.status, [*self._headers(), *_query_compatible_headers(error, model)], encode_cbor(body))


# --- query (form-encoded requests, XML answers) ------------------------------------------------

_FORM_CONTENT_TYPE = "application/x-www-form-urlencoded"
_QUERY_ENVELOPE = frozenset({"Action", "Version"})


class _Form:
    """A query request's parameters, with what has been read, so leftovers can be named."""

    def __init__(self, pairs: dict[str, str]) -> None:
        self.values = pairs
        self.used: set[str] = set(_QUERY_ENVELOPE)
        self._prefixes = {key.rsplit(".", depth)[0] for key in pairs for depth in range(key.count(".") + 1)}

    def has(self, key: str) -> bool:
        return key in self._prefixes

    def take(self, key: str) -> str:
        self.used.add(key)
        return self.values[key]


def _query_list_prefix(shape: Shape, prefix: str) -> str:
    """Where a list's items are, exactly as botocore's QuerySerializer writes them."""
    if shape.serialization.get("flattened"):
        name = shape.member.serialization.get("name")
        return ".".join(prefix.split(".")[:-1] + [name]) if name else prefix
    return f"{prefix}.{shape.member.serialization.get('name', 'member')}"


_QUERY_SCALARS: dict[str, Callable[[str], object]] = {
    "integer": int,
    "long": int,
    "float": float,  # also reads "NaN", "Infinity", "-Infinity"
    "double": float,
    "boolean": lambda text: {"true": True, "false": False}[text],
    "timestamp": parse_timestamp,
    "blob": lambda text: base64.b64decode(text, validate=True),
}


def decode_query(form: _Form, shape: Shape, prefix: str = ""):
    """Form parameters -> the Python value for `shape` (the inverse of QuerySerializer)."""
    kind = shape.type_name
    if kind == "structure":
        value = {}
        for name, member in shape.members.items():
            key = member.serialization.get("name", name)
            key = f"{prefix}.{key}" if prefix else key
            if member.type_name == "list" and member.serialization.get("flattened"):
                present = form.has(_query_list_prefix(member, key))
            else:
                present = form.has(key)
            if present:
                value[name] = decode_query(form, member, key)
        return value
    if kind == "list":
        if form.values.get(prefix) == "":  # QuerySerializer's empty list
            form.take(prefix)
            return []
        items, base = [], _query_list_prefix(shape, prefix)
        while form.has(f"{base}.{len(items) + 1}"):
            items.append(decode_query(form, shape.member, f"{base}.{len(items) + 1}"))
        return items
    if kind == "map":
        entries = prefix if shape.serialization.get("flattened") else f"{prefix}.entry"
        key_name = shape.key.serialization.get("name", "key")
        value_name = shape.value.serialization.get("name", "value")
        value, n = {}, 1
        while form.has(f"{entries}.{n}"):
            value[decode_query(form, shape.key, f"{entries}.{n}.{key_name}")] = decode_query(
                form, shape.value, f"{entries}.{n}.{value_name}")
            n += 1
        return value
    if not form.has(prefix) or prefix not in form.values:
        raise SerializationError(f"parameter {prefix} is not a single value")
    text = form.take(prefix)
    convert = _QUERY_SCALARS.get(kind)
    if convert is None:
        return text
    try:
        return convert(text)
    except (ValueError, KeyError, TypeError, OverflowError, binascii.Error):
        raise SerializationError(f"parameter {prefix} {text!r} is not a valid {kind}") from None


def _xml_text(value, shape: Shape) -> str:
    kind = shape.type_name
    if kind == "timestamp":
        moment = to_datetime(value).astimezone(timezone.utc)
        return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"
    if kind == "boolean":
        return "true" if value else "false"
    if kind == "blob":
        return base64.b64encode(value).decode("ascii")
    if kind in ("float", "double"):
        return str(_encode_float(float(value), shape))
    return str(value)


def _xml_add(parent: ElementTree.Element, tag: str, value, shape: Shape) -> None:
    """Append `value` as the XML botocore's QueryParser reads for `shape`."""
    kind = shape.type_name
    if kind == "list" and shape.serialization.get("flattened"):
        for item in value:
            _xml_add(parent, shape.member.serialization.get("name", tag), item, shape.member)
        return
    element = ElementTree.SubElement(parent, tag)
    if kind == "structure":
        _xml_members(element, value, shape)
    elif kind == "list":
        for item in value:
            _xml_add(element, shape.member.serialization.get("name", "member"), item, shape.member)
    elif kind == "map":
        for key, item in value.items():
            entry = ElementTree.SubElement(element, "entry")
            _xml_add(entry, shape.key.serialization.get("name", "key"), key, shape.key)
            _xml_add(entry, shape.value.serialization.get("name", "value"), item, shape.value)
    else:
        element.text = _xml_text(value, shape)


def _xml_members(element: ElementTree.Element, value: dict, shape: Shape) -> None:
    for name, member in shape.members.items():
        if value.get(name) is not None:
            _xml_add(element, member.serialization.get("name", name), value[name], member)


class QueryCodec:
    """AWS query: `Action=<Operation>&Version=<apiVersion>&...` form-encoded in a POST body (or a
    GET query string), XML answers. Older clients (AWS CLI v1, boto3 before CloudWatch's JSON
    protocol) speak it to CloudWatch. Requests are read back from the form botocore's
    QuerySerializer writes (unknown parameters are refused by name); answers and errors have the
    XML shape botocore's QueryParser reads."""

    def _form(self, request: WireRequest) -> dict[str, str] | None:
        if request.method == "POST" and request.headers.get("content-type", "").startswith(_FORM_CONTENT_TYPE):
            text = request.body.decode("utf-8", "replace")
        elif request.method == "GET" and "Action=" in request.query:
            text = request.query
        else:
            return None
        return dict(parse_qsl(text, keep_blank_values=True))

    def operation(self, request: WireRequest, model: ServiceModel) -> tuple[str, dict] | None:
        form = self._form(request)
        if not form or form.get("Version") != model.metadata.get("apiVersion"):
            return None
        name = form.get("Action", "")
        return (name, {}) if name in model.operation_names else None

    def known_operation(self, request: WireRequest, model: ServiceModel) -> str | None:
        form = self._form(request)
        return form.get("Action") if form and form.get("Version") == model.metadata.get("apiVersion") else None

    def parse(self, request: WireRequest, operation: OperationModel, captures: dict) -> dict:
        form = _Form(self._form(request) or {})
        params = decode_query(form, operation.input_shape) if operation.input_shape is not None else {}
        unknown = sorted(set(form.values) - form.used)
        if unknown:
            raise SerializationError(f"{operation.name} has no parameter {', '.join(unknown)}")
        return params

    def _document(self, root: ElementTree.Element) -> bytes:
        return ElementTree.tostring(root, encoding="utf-8", xml_declaration=False)

    def serialize(self, result: dict, operation: OperationModel) -> WireResponse:
        request_id = _request_id()
        root = ElementTree.Element(f"{operation.name}Response", xmlns=operation.service_model.metadata["xmlNamespace"])
        shape = operation.output_shape
        if shape is not None:
            wrapper = shape.serialization.get("resultWrapper")
            _xml_members(ElementTree.SubElement(root, wrapper) if wrapper else root, result, shape)
        ElementTree.SubElement(ElementTree.SubElement(root, "ResponseMetadata"), "RequestId").text = request_id
        return WireResponse(200, [("Content-Type", "text/xml"), ("x-amzn-RequestId", request_id)], self._document(root))

    def error(self, error: errors.ServiceError, model: ServiceModel) -> WireResponse:
        request_id = _request_id()
        root = ElementTree.Element("ErrorResponse", xmlns=model.metadata["xmlNamespace"])
        details = ElementTree.SubElement(root, "Error")
        ElementTree.SubElement(details, "Type").text = _fault(error)
        ElementTree.SubElement(details, "Code").text = _query_error_code(error, model)
        ElementTree.SubElement(details, "Message").text = error.message
        ElementTree.SubElement(root, "RequestId").text = request_id
        return WireResponse(error.status, [("Content-Type", "text/xml"), ("x-amzn-RequestId", request_id)],
                            self._document(root))


CODECS = {"json": JsonCodec(), "rest-json": RestJsonCodec(), "smithy-rpc-v2-cbor": CborCodec(), "query": QueryCodec()}
