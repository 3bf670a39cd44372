"""SageMaker Runtime `InvokeEndpoint`, locally: route to a variant's model server, capture, answer.

The variant is the caller's `TargetVariant`, or drawn by the variants' current weights. The body
goes to the server's `POST /invocations` with the caller's `Content-Type`, `Accept` and custom
attributes, as SageMaker forwards them to the container. A container answering 4xx/5xx becomes
`ModelError` (HTTP 424) carrying `OriginalStatusCode` and `OriginalMessage`, as on SageMaker; a
container that does not answer in 60 s is a `ModelError` with SageMaker's timeout message; one
that cannot be reached is `ServiceUnavailable`. Successful invocations are captured as the
endpoint config's `DataCaptureConfig` says (`local.capture_writer.CaptureWriter`, timestamps from the
stack's clock), and delivered to S3 at each clock tick.
"""

from __future__ import annotations

import random

import urllib3

from diversity_monitor.local import errors
from diversity_monitor.local.hosting import Deployment, LiveVariant
from diversity_monitor.local.platform import LocalPlatform

MODEL_TIMEOUT_SECONDS = 60  # SageMaker's limit for a real-time container to answer
_rng = random.Random()
_http = urllib3.PoolManager(
    maxsize=64, retries=False, timeout=urllib3.Timeout(connect=5.0, read=MODEL_TIMEOUT_SECONDS)
)

# Request member -> header the container receives (SageMaker passes these through).
FORWARDED_HEADERS = {
    "ContentType": "Content-Type",
    "Accept": "Accept",
    "CustomAttributes": "X-Amzn-SageMaker-Custom-Attributes",
}
# Members that address features a single-container, single-model endpoint does not have.
UNSUPPORTED = {
    "TargetModel": "multi-model endpoints",
    "TargetContainerHostname": "multi-container endpoints with direct invocation",
    "InferenceComponentName": "inference components",
    "SessionId": "stateful sessions",
    "EnableExplanations": "SageMaker Clarify online explainability",
}


class ValidationError(errors.ValidationError):
    """SageMaker Runtime models its own `ValidationError` (SageMaker's is `ValidationException`)."""

    code = "ValidationError"


def _deployment(platform: LocalPlatform, name: str) -> Deployment:
    deployment = platform.hosting.live(name)
    if deployment is not None:
        return deployment
    record = platform.store.get("Endpoint", name)
    if record is None:
        raise ValidationError(f"Endpoint {name} of account {platform.account_id} not found.")
    raise ValidationError(
        f"Endpoint {name} of account {platform.account_id} is not in service (status {record['EndpointStatus']})."
    )


def choose_variant(deployment: Deployment, target: str | None, rng: random.Random = _rng) -> LiveVariant:
    variants = deployment.variants
    if target is not None:
        if target not in variants:
            raise ValidationError(
                f"TargetVariant {target} is not a variant of endpoint {deployment.endpoint_name} "
                f"(variants: {', '.join(variants)})."
            )
        return variants[target]
    candidates = [variant for variant in variants.values() if variant.weight > 0]
    if not candidates:
        raise ValidationError(f"Endpoint {deployment.endpoint_name} has no variant with a weight above 0; name a TargetVariant.")
    return rng.choices(candidates, weights=[variant.weight for variant in candidates])[0]


def invoke_endpoint(platform: LocalPlatform, params: dict) -> dict:
    name = params["EndpointName"]
    for member, feature in UNSUPPORTED.items():
        if member in params:
            raise ValidationError(f"{member} is set, but endpoint {name} has no {feature} (the local stack does not run them).")
    deployment = _deployment(platform, name)
    variant = choose_variant(deployment, params.get("TargetVariant"))
    headers = {header: params[member] for member, header in FORWARDED_HEADERS.items() if member in params}
    body = params.get("Body", b"")
    try:
        answer = _http.request("POST", f"{variant.server.url}/invocations", body=body, headers=headers)
    except urllib3.exceptions.ReadTimeoutError:
        raise errors.ModelError(
            "Your invocation timed out while waiting for a response from container primary. "
            f"Review the latency of the model server (log {variant.server.log_path}) and try again.",
            0, "", _log_stream_arn(platform, name),
        ) from None
    except urllib3.exceptions.HTTPError as error:
        raise errors.ServiceUnavailable(
            f"the model server of variant {variant.name} of endpoint {name} is not reachable ({error}); "
            f"see {variant.server.log_path}"
        ) from None
    if answer.status >= 400:
        text = answer.data.decode("utf-8", "replace")
        side = "client" if answer.status < 500 else "server"
        raise errors.ModelError(
            f'Received {side} error ({answer.status}) from primary with message "{text}". '
            f"See {variant.server.log_path} in account {platform.account_id} for more information.",
            answer.status, text, _log_stream_arn(platform, name),
        )
    content_type = answer.headers.get("Content-Type")
    writer = deployment.capture.writer(variant.name) if deployment.capture else None
    if writer is not None:
        writer.capture(
            body, params.get("ContentType"), answer.data, content_type,
            platform.clock.now(), params.get("InferenceId"), params.get("CustomAttributes"),
        )
    result = {
        "Body": answer.data,
        "ContentType": content_type,
        "InvokedProductionVariant": variant.name,
        "CustomAttributes": answer.headers.get("X-Amzn-SageMaker-Custom-Attributes"),
    }
    return {key: value for key, value in result.items() if value is not None}


def _log_stream_arn(platform: LocalPlatform, endpoint_name: str) -> str:
    return f"arn:aws:logs:{platform.region}:{platform.account_id}:log-group:/aws/sagemaker/Endpoints/{endpoint_name}"


def install(platform: LocalPlatform) -> None:
    platform.register_operations("sagemaker-runtime", {"InvokeEndpoint": invoke_endpoint})
    # Captures reach S3 at every minute tick, before later subscribers (schedules) read them.
    platform.clock.subscribe(platform.hosting.flush_captures)
