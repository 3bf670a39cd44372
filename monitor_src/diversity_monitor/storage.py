"""Read and write by URI: `s3://bucket/key` through boto3, anything else as a local path.

Clients are built the ordinary way (`boto3.client("s3")`), so boto3's own settings
(`AWS_ENDPOINT_URL`, `AWS_ENDPOINT_URL_S3`, profiles, regions) decide where S3 is; the kit has
no endpoint variable of its own.
"""

from __future__ import annotations

import functools
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, urlparse

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

_local = threading.local()


class StorageError(RuntimeError):
    """A URI that cannot be read or written; the message names the URI."""


@dataclass(frozen=True)
class S3Location:
    bucket: str
    key: str

    @classmethod
    def parse(cls, uri: str) -> S3Location:
        parsed = urlparse(uri)
        if parsed.scheme != "s3" or not parsed.netloc:
            raise StorageError(f"{uri!r} is not an s3://bucket/key URI")
        return cls(parsed.netloc, parsed.path.lstrip("/"))

    def __str__(self) -> str:
        return f"s3://{self.bucket}/{self.key}"


def is_s3(uri: str) -> bool:
    return str(uri).startswith("s3://")


def _boto3_settings() -> tuple[tuple[str, str], ...]:
    """The environment that decides where and as whom a client talks (AWS_ENDPOINT_URL, region...)."""
    return tuple(sorted((name, value) for name, value in os.environ.items() if name.startswith("AWS_")))


def s3_client():
    """One S3 client per thread (sessions are not thread-safe) and per boto3 setting.

    Reused because capture reads make thousands of calls; rebuilt when the AWS_* settings change
    (a notebook's `aws.session.use_endpoint`, a second local stack), so a client never keeps
    talking to an endpoint the process has moved away from.
    """
    settings = _boto3_settings()
    cached = getattr(_local, "s3", None)
    if cached is None or cached[0] != settings:
        cached = (settings, boto3.session.Session().client("s3"))
        _local.s3 = cached
    return cached[1]


class TooLarge(StorageError):
    """An object past the size cap its reader set: the message names the URI and the cap."""


def read_bytes(uri: str, limit: int | None = None) -> bytes:
    """The whole object; with `limit`, at most that many bytes are read and a larger object is TooLarge.

    S3 reads ask for one byte past the cap (a Range request), a local read stops there too, so a
    wrong key on a huge object (or /dev/zero) costs at most `limit` bytes of memory.
    """
    if is_s3(uri):
        location = S3Location.parse(uri)
        extra = {} if limit is None else {"Range": f"bytes=0-{limit}"}
        try:
            data = s3_client().get_object(Bucket=location.bucket, Key=location.key, **extra)["Body"].read()
        except (ClientError, BotoCoreError) as error:
            if getattr(error, "response", {}).get("Error", {}).get("Code") == "InvalidRange":  # an empty object
                return b""
            raise StorageError(f"cannot read {uri}: {_describe(error)}") from error
    else:
        try:
            with open(uri, "rb") as handle:
                data = handle.read() if limit is None else handle.read(limit + 1)
        except OSError as error:
            raise StorageError(f"cannot read {uri}: {error.strerror or error}") from error
    if limit is not None and len(data) > limit:
        raise TooLarge(f"{uri} is larger than {limit:,} bytes, the most read for it: is it the right object?")
    return data


def read_text(uri: str, limit: int | None = None) -> str:
    data = read_bytes(uri, limit)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise StorageError(f"{uri} is not UTF-8 text (byte {error.start})") from error


def write_bytes(uri: str, data: bytes, *, overwrite: bool = True) -> None:
    if is_s3(uri):
        location = S3Location.parse(uri)
        extra = {} if overwrite else {"IfNoneMatch": "*"}
        try:
            s3_client().put_object(Bucket=location.bucket, Key=location.key, Body=data, **extra)
        except (ClientError, BotoCoreError) as error:
            if getattr(error, "response", {}).get("Error", {}).get("Code") == "PreconditionFailed":
                raise StorageError(f"{uri} already exists; not overwriting it") from error
            raise StorageError(f"cannot write {uri}: {_describe(error)}") from error
        return
    path = Path(uri)
    path.parent.mkdir(parents=True, exist_ok=True)
    if overwrite:
        with open(path, "wb") as handle:
            handle.write(data)
        return
    create_exclusively(path, data)


# Created, never opened: an existing file, or a link (even one pointing nowhere), is refused.
_EXCLUSIVE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)


def create_exclusively(path: Path, data: bytes) -> int:
    """Write a new local file; StorageError if anything (a file, a dangling symlink) has the name.

    O_EXCL with O_CREAT never follows a final symlink, so a link planted in an output folder
    cannot make the write land outside it. Returns the size.
    """
    try:
        descriptor = os.open(path, _EXCLUSIVE, 0o644)
    except FileExistsError as error:
        what = "a symbolic link" if os.path.islink(path) else "a file"
        raise StorageError(f"{path} already exists ({what}); not overwriting it") from error
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(data)
    return len(data)


def write_file_atomically(path: Path, data: bytes, *, exclusive: bool = False) -> int:
    """Write a local file under a temporary name beside it, then rename: readers see all of it or none.

    A full disk or a stop leaves no half-written file under the real name (the temporary one is
    removed) and raises the OSError. `exclusive`: the name must be free (a file or any symlink there
    is a FileExistsError; a hard link, not a rename, puts the file in place). Returns the size.
    """
    path = Path(path)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.partial")
    try:
        with os.fdopen(os.open(temporary, _EXCLUSIVE, 0o644), "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        if exclusive:
            os.link(temporary, path, follow_symlinks=False)  # fails on anything at `path`, links included
            temporary.unlink()
        else:
            os.replace(temporary, path)
    except BaseException:
        try:
            temporary.unlink()
        except OSError:
            pass
        raise
    return len(data)


def exists(uri: str) -> bool:
    if is_s3(uri):
        location = S3Location.parse(uri)
        try:
            s3_client().head_object(Bucket=location.bucket, Key=location.key)
            return True
        except (ClientError, BotoCoreError) as error:
            if getattr(error, "response", {}).get("ResponseMetadata", {}).get("HTTPStatusCode") == 404:
                return False
            raise StorageError(f"cannot check {uri}: {_describe(error)}") from error
    return Path(uri).exists()


def list_objects(prefix_uri: str) -> Iterator[str]:
    """Every object (S3) or file (local) under a prefix, as URIs, in key order."""
    if is_s3(prefix_uri):
        location = S3Location.parse(prefix_uri)
        paginator = s3_client().get_paginator("list_objects_v2")
        try:
            for page in paginator.paginate(Bucket=location.bucket, Prefix=location.key):
                for item in page.get("Contents", []):
                    yield f"s3://{location.bucket}/{item['Key']}"
        except (ClientError, BotoCoreError) as error:
            raise StorageError(f"cannot list {prefix_uri}: {_describe(error)}") from error
        return
    root = Path(prefix_uri)
    if root.is_file():
        yield str(root)
    elif root.is_dir():
        yield from (str(path) for path in sorted(root.rglob("*")) if path.is_file())


def join(base_uri: str, *parts: str) -> str:
    base = str(base_uri).rstrip("/")
    return "/".join([base, *(part.strip("/") for part in parts)])


@functools.singledispatch
def _describe(error: Exception) -> str:
    return str(error)


@_describe.register
def _(error: ClientError) -> str:
    info = error.response.get("Error", {})
    return f"{info.get('Code', 'error')}: {info.get('Message', '')}".rstrip(": ")


@_describe.register
def _(error: BotoCoreError) -> str:
    return f"{type(error).__name__}: {error}"  # connection refused, no credentials, a response cut short


# --- links a person can open -------------------------------------------------------------------

LINK_EXPIRY_SECONDS = 7 * 24 * 3600  # SigV4 query signatures last at most a week
CONSOLE_OBJECT_URL = "https://{region}.console.aws.amazon.com/s3/object/{bucket}?region={region}&prefix={key}"


def browser_url(uri: str) -> str:
    """A link a browser opens for `uri`: on AWS, the object's page in the S3 console (the on-call's
    own sign-in applies); where boto3 is pointed elsewhere (the local stack), a presigned GET of the
    object itself; a local path, its file:// URL."""
    if not is_s3(uri):
        return Path(uri).resolve().as_uri()
    bucket, _, key = uri[len("s3://"):].partition("/")
    if not os.environ.get("AWS_ENDPOINT_URL"):
        region = boto3.session.Session().region_name or "us-east-1"
        return CONSOLE_OBJECT_URL.format(region=region, bucket=bucket, key=quote(key, safe="/"))
    # SigV4 query signing (botocore would presign SigV2 against a custom endpoint); no credentials in the link.
    signer = boto3.session.Session().client("s3", config=Config(signature_version="s3v4"))
    return signer.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": key},
                                         ExpiresIn=LINK_EXPIRY_SECONDS)
