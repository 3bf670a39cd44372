"""Errors the stand-in services return, in the shapes botocore parses.

SageMaker speaks the JSON protocol: a 4xx/5xx with `{"__type": Code, "message": ...}` (and the
`x-amzn-ErrorType` header) becomes `ClientError` with that code and message in boto3.
"""

from __future__ import annotations

import contextlib

from botocore.exceptions import ClientError


class ServiceError(Exception):
    code = "InternalFailure"
    status = 500

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def body(self) -> dict:
        return {"__type": self.code, "message": self.message, "Message": self.message}

    def headers(self) -> dict:
        return {"x-amzn-ErrorType": self.code, "Content-Type": "application/x-amz-json-1.1"}


class ValidationError(ServiceError):
    code = "ValidationException"
    status = 400


class ResourceNotFound(ServiceError):
    code = "ResourceNotFound"
    status = 400


class ResourceInUse(ServiceError):
    code = "ResourceInUse"
    status = 400


class ResourceLimitExceeded(ServiceError):
    code = "ResourceLimitExceeded"
    status = 400


class UnknownOperation(ServiceError):
    code = "UnknownOperationException"
    status = 400


class ModelError(ServiceError):
    """SageMaker Runtime: the model container answered with an error (HTTP 424 to the caller)."""

    code = "ModelError"
    status = 424

    def __init__(self, message: str, original_status: int, original_message: str, log_stream_arn: str = "") -> None:
        super().__init__(message)
        self.original_status = original_status
        self.original_message = original_message
        self.log_stream_arn = log_stream_arn

    def body(self) -> dict:
        return {
            **super().body(),
            "OriginalStatusCode": self.original_status,
            "OriginalMessage": self.original_message,
            "LogStreamArn": self.log_stream_arn,
        }


class ServiceUnavailable(ServiceError):
    code = "ServiceUnavailable"
    status = 503


@contextlib.contextmanager
def refused_by_moto():
    """A request moto refuses reaches the caller with moto's error code, status and message."""
    try:
        yield
    except ClientError as error:
        details = error.response.get("Error", {})
        refused = ServiceError(details.get("Message") or str(error))
        refused.code = details.get("Code") or refused.code
        refused.status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 400
        raise refused from error
