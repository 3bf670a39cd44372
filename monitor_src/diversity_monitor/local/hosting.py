"""SageMaker hosting, locally: models, endpoint configs, endpoints and the model servers behind them.

A deployment starts one model server per production variant, as SageMaker starts the model's
image: the image URI resolves to a project Dockerfile (`local.images`), the model archive
(`ModelDataUrl`, in the stack's S3) is extracted to `<jobs_dir>/models/<model>/model` (the
process's /opt/ml/model), and the image runs with `serve` and `SAGEMAKER_BIND_TO_PORT` set to a
free loopback port. The variant is live once `GET /ping` answers 200.

`UpdateEndpoint` is a real rollout: status `Updating` with a `PendingDeploymentSummary`, the new
config's servers start while the old ones keep serving, traffic switches, the old servers stop,
status returns to `InService`. A failed rollout leaves the old deployment serving (status
`InService`, `FailureReason` set). Endpoint configs are never deleted by a rollout, so updating
back to the previous config is a rollback.

Create/Update return once the endpoint is in service, or after `SYNC_DEPLOY_SECONDS` with the
deployment still going on (a boto3 call never runs into its 60 s read timeout); either way
`DescribeEndpoint` reports the status as it is, and the `endpoint_in_service` waiter works.
"""

from __future__ import annotations

import concurrent.futures
import hashlib
import io
import json
import logging
import shutil
import tarfile
import threading
from dataclasses import dataclass, field
from pathlib import Path

from botocore.exceptions import ClientError

from diversity_monitor import storage
from diversity_monitor.local import images, run_safety
from diversity_monitor.local.capture_delivery import CaptureDelivery, deliver_leftovers
from diversity_monitor.local.errors import ValidationError
from diversity_monitor.local.platform import (
    LOOPBACK,
    LocalPlatform,
    StackError,
    free_port,
    stop_process,
    wait_until_answering,
)
from diversity_monitor.local.protocols import service_model, to_datetime

log = logging.getLogger(__name__)

SYNC_DEPLOY_SECONDS = 30.0
DEFAULT_HEALTH_CHECK_SECONDS = 120  # ContainerStartupHealthCheckTimeoutInSeconds when not given
SERVE_ARGUMENTS = ["serve"]  # SageMaker runs inference images as `docker run IMAGE serve`

# Record kind -> (ARN resource type, the name used in AWS's messages).
RESOURCES = {
    "Model": ("model", "model"),
    "EndpointConfig": ("endpoint-config", "endpoint configuration"),
    "Endpoint": ("endpoint", "endpoint"),
}
_IN_PROGRESS = {"Creating", "Updating", "SystemUpdating", "RollingBack", "Deleting"}


class DeploymentFailed(Exception):
    """A variant could not be brought up; the message becomes the endpoint's FailureReason."""


# What bringing up a variant can run into, reported as the FailureReason without a traceback.
_EXPECTED_FAILURES = (DeploymentFailed, StackError, images.ImageNotFound, storage.StorageError, OSError, ClientError)


# --- records ----------------------------------------------------------------------------------

def _arn(platform: LocalPlatform, kind: str, name: str) -> str:
    return platform.arn(RESOURCES[kind][0], name)


def get_resource(platform: LocalPlatform, kind: str, name: str) -> dict:
    """The stored record of a Model, EndpointConfig or Endpoint, or SageMaker's not-found error
    (`Could not find endpoint "arn:..."`, the one wording every module uses)."""
    record = platform.store.get(kind, name)
    if record is None:
        raise ValidationError(f'Could not find {RESOURCES[kind][1]} "{_arn(platform, kind, name)}".')
    return record


def _must_not_exist(platform: LocalPlatform, kind: str, name: str) -> None:
    if platform.store.get(kind, name) is not None:
        raise ValidationError(f'Cannot create already existing {RESOURCES[kind][1]} "{_arn(platform, kind, name)}".')


def _described(params: dict, output_shape: str) -> dict:
    """The request members that the Describe* response repeats."""
    members = service_model("sagemaker").shape_for(output_shape).members
    return {key: value for key, value in params.items() if key in members}


def _single_container(params: dict) -> dict:
    containers = [params["PrimaryContainer"]] if "PrimaryContainer" in params else params.get("Containers", [])
    if len(containers) != 1:
        raise ValidationError(
            f"the local stack runs single-container models: give PrimaryContainer or one entry in Containers "
            f"(got {len(containers)})"
        )
    return containers[0]


def _container(model_record: dict) -> dict:
    return model_record.get("PrimaryContainer") or model_record["Containers"][0]


# --- model servers ----------------------------------------------------------------------------

@dataclass
class ModelServer:
    model_name: str
    url: str
    process: object  # subprocess.Popen
    log_path: Path

    def stop(self) -> None:
        stop_process(self.process)


@dataclass
class LiveVariant:
    name: str
    weight: float
    server: ModelServer


@dataclass
class Deployment:
    """What serves an endpoint right now: one server per variant, and its data capture."""

    endpoint_name: str
    config_name: str
    variants: dict[str, LiveVariant]
    capture: CaptureDelivery | None = None

    def stop(self) -> None:
        if self.capture:
            self.capture.close()
        for variant in self.variants.values():
            variant.server.stop()


@dataclass
class Hosting:
    platform: LocalPlatform
    _live: dict[str, Deployment] = field(default_factory=dict)
    _endpoint_locks: dict[str, threading.Lock] = field(default_factory=dict)
    _model_locks: dict[str, threading.Lock] = field(default_factory=dict)
    _locks_lock: threading.Lock = field(default_factory=threading.Lock)
    _executor: concurrent.futures.ThreadPoolExecutor = field(
        default_factory=lambda: concurrent.futures.ThreadPoolExecutor(max_workers=8, thread_name_prefix="deploy")
    )
    # Every model server process launched and not yet reaped, live or still starting: a stop must
    # reach those a deploy in progress has not made live yet, or they outlive the stack.
    _processes: set = field(default_factory=set)
    _processes_lock: threading.Lock = field(default_factory=threading.Lock)
    _stopping: bool = False

    # --- what runtime reads ---

    def live(self, endpoint_name: str) -> Deployment | None:
        return self._live.get(endpoint_name)

    def flush_captures(self, *_now) -> int:
        """Deliver every live endpoint's captures (a clock-tick subscriber)."""
        return sum(deployment.capture.flush() for deployment in list(self._live.values()) if deployment.capture)

    # --- locks ---

    def endpoint_lock(self, name: str) -> threading.Lock:
        with self._locks_lock:
            return self._endpoint_locks.setdefault(name, threading.Lock())

    def _model_lock(self, name: str) -> threading.Lock:
        with self._locks_lock:
            return self._model_locks.setdefault(name, threading.Lock())

    # --- deploying ---

    def deploy(self, endpoint_name: str, config: dict) -> Deployment:
        """Start a server per variant of `config` (in parallel); all or nothing."""
        variants = config["ProductionVariants"]
        futures = {
            variant["VariantName"]: self._executor.submit(self._start_server, endpoint_name, config, variant)
            for variant in variants
        }
        started, failures = {}, []
        for name, future in futures.items():
            try:
                started[name] = future.result()
            except _EXPECTED_FAILURES as error:
                failures.append(f"variant {name}: {error}")
            except Exception as error:  # still the endpoint's FailureReason; the traceback goes to the log
                log.exception("deploying variant %s of endpoint %s failed", name, endpoint_name)
                failures.append(f"variant {name}: {type(error).__name__}: {error}")
        capture = None
        capture_config = config.get("DataCaptureConfig")
        if not failures and capture_config and capture_config.get("EnableCapture", True):
            try:
                capture = CaptureDelivery(self.platform, endpoint_name, capture_config, list(started))
            except (ValueError, OSError) as error:
                failures.append(f"data capture: {error}")
        if failures:
            for server in started.values():
                server.stop()
            raise DeploymentFailed("; ".join(failures))
        live = {
            variant["VariantName"]: LiveVariant(
                variant["VariantName"], float(variant.get("InitialVariantWeight", 1.0)), started[variant["VariantName"]]
            )
            for variant in variants
        }
        return Deployment(endpoint_name, config["EndpointConfigName"], live, capture)

    def _start_server(self, endpoint_name: str, config: dict, variant: dict) -> ModelServer:
        model_name = variant.get("ModelName")
        model = self.platform.store.get("Model", model_name) if model_name else None
        if model is None:
            raise DeploymentFailed(f"model {model_name!r} does not exist")
        container = _container(model)
        # Again here: a model stored by an older stack (or restored from a state folder) was never checked.
        problems = run_safety.environment_problems(container.get("Environment"), f"model {model_name!r} Environment")
        if problems:
            raise DeploymentFailed("; ".join(problems))
        spec = images.resolve(container["Image"])
        root = self._prepare_model(model_name, container)
        port = free_port()
        environment = {
            **container.get("Environment", {}),
            **self.platform.process_environment(),
            "SAGEMAKER_BIND_TO_PORT": str(port),
        }
        log_path = self.platform.jobs_dir / "endpoints" / endpoint_name / config["EndpointConfigName"] / f"{variant['VariantName']}.log"
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with self._processes_lock:
            if self._stopping:
                raise DeploymentFailed("the local stack is stopping")
            process = images.launch(spec, root, environment, SERVE_ARGUMENTS, log_path=log_path)
            self._processes = {known for known in self._processes if known.poll() is None} | {process}
        url = f"http://{LOOPBACK}:{port}"
        timeout = variant.get("ContainerStartupHealthCheckTimeoutInSeconds", DEFAULT_HEALTH_CHECK_SECONDS)
        try:
            wait_until_answering(f"{url}/ping", process, f"model server {container['Image']} (log {log_path})", log_path, timeout)
        except StackError as error:
            stop_process(process)
            raise DeploymentFailed(str(error)) from None
        return ModelServer(model_name, url, process, log_path)

    def _prepare_model(self, model_name: str, container: dict) -> Path:
        """`<jobs_dir>/models/<model>`, whose `model/` holds the extracted ModelDataUrl archive."""
        root = self.platform.jobs_dir / "models" / model_name
        model_dir = root / "model"
        url = container.get("ModelDataUrl")
        with self._model_lock(model_name):
            if url is None:
                model_dir.mkdir(parents=True, exist_ok=True)
                return root
            location = storage.S3Location.parse(url)
            s3 = self.platform.aws_client("s3")
            etag = s3.head_object(Bucket=location.bucket, Key=location.key)["ETag"]
            marker = root / "model.source.json"
            source = {"ModelDataUrl": url, "ETag": etag}
            if model_dir.is_dir() and marker.is_file() and json.loads(marker.read_text()) == source:
                return root  # already extracted (another variant, a rollback, a restart)
            data = s3.get_object(Bucket=location.bucket, Key=location.key)["Body"].read()
            fresh = root / "model.new"
            shutil.rmtree(fresh, ignore_errors=True)
            fresh.mkdir(parents=True)
            try:
                with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as archive:
                    archive.extractall(fresh, filter="data")  # refuses absolute paths, links out, devices
            except (tarfile.TarError, OSError) as error:
                raise DeploymentFailed(f"model data {url} is not a gzipped tar archive ({error})") from None
            shutil.rmtree(model_dir, ignore_errors=True)
            fresh.rename(model_dir)
            marker.write_text(json.dumps(source))
            return root

    # --- endpoint state changes (run in the deploy executor) ---

    def _summaries(self, config: dict) -> list[dict]:
        summaries = []
        for variant in config["ProductionVariants"]:
            model = self.platform.store.get("Model", variant["ModelName"]) or {}
            image = _container(model)["Image"] if model else ""
            weight = float(variant.get("InitialVariantWeight", 1.0))
            summary = {
                "VariantName": variant["VariantName"],
                "DeployedImages": [{"SpecifiedImage": image, "ResolvedImage": _resolved(image), "ResolutionTime": self.platform.timestamp()}],
                "CurrentWeight": weight,
                "DesiredWeight": weight,
            }
            if "ServerlessConfig" in variant:
                summary["CurrentServerlessConfig"] = summary["DesiredServerlessConfig"] = variant["ServerlessConfig"]
            else:
                count = variant.get("InitialInstanceCount", 1)
                summary["CurrentInstanceCount"] = summary["DesiredInstanceCount"] = count
            summaries.append(summary)
        return summaries

    def _apply(self, endpoint_name: str, change) -> dict | None:
        """Read-modify-write an endpoint record under its lock; None if it is gone."""
        with self.endpoint_lock(endpoint_name):
            record = self.platform.store.get("Endpoint", endpoint_name)
            if record is None:
                return None
            change(record)
            record["LastModifiedTime"] = self.platform.timestamp()
            self.platform.store.put("Endpoint", endpoint_name, record)
            return record

    def run_create(self, endpoint_name: str, config: dict) -> None:
        try:
            deployment = self.deploy(endpoint_name, config)
        except DeploymentFailed as error:
            reason = str(error)
            self._apply(endpoint_name, lambda record: record.update(EndpointStatus="Failed", FailureReason=reason))
            return
        self._live[endpoint_name] = deployment

        def in_service(record: dict) -> None:
            record.update(EndpointStatus="InService", ProductionVariants=self._summaries(config))
            record.pop("FailureReason", None)
            _set_capture_summary(record, config)

        if self._apply(endpoint_name, in_service) is None:  # deleted while creating
            self._live.pop(endpoint_name, None)
            deployment.stop()

    def run_update(self, endpoint_name: str, config: dict, deployment_config: dict | None) -> None:
        try:
            deployment = self.deploy(endpoint_name, config)
        except DeploymentFailed as error:
            reason = f"update to {config['EndpointConfigName']} failed: {error}"

            def rolled_back(record: dict) -> None:  # the old deployment never stopped serving
                record.update(EndpointStatus="InService", FailureReason=reason)
                record.pop("PendingDeploymentSummary", None)

            self._apply(endpoint_name, rolled_back)
            return
        previous = self._live.get(endpoint_name)
        self._live[endpoint_name] = deployment  # the switch: new invocations go to the new servers

        def in_service(record: dict) -> None:
            record.update(
                EndpointStatus="InService",
                EndpointConfigName=config["EndpointConfigName"],
                ProductionVariants=self._summaries(config),
            )
            record.pop("PendingDeploymentSummary", None)
            record.pop("FailureReason", None)
            if deployment_config is not None:
                record["LastDeploymentConfig"] = deployment_config
            _set_capture_summary(record, config)

        if self._apply(endpoint_name, in_service) is None:  # deleted while updating
            self._live.pop(endpoint_name, None)
            deployment.stop()
        if previous:
            previous.stop()

    def restore(self) -> None:
        """After a restart: deliver spooled captures, bring back every endpoint that was serving."""
        deliver_leftovers(self.platform)
        pending = {}
        for record in self.platform.store.list("Endpoint"):
            name, status = record["EndpointName"], record["EndpointStatus"]
            if status == "Deleting":
                self.platform.store.delete("Endpoint", name)
            elif status != "Failed":
                # An interrupted update restarts on the config that was serving.
                config = self.platform.store.get("EndpointConfig", record["EndpointConfigName"])
                if config is None:
                    reason = f"endpoint config {record['EndpointConfigName']} no longer exists; it cannot be redeployed"
                    self._apply(name, lambda r, reason=reason: r.update(EndpointStatus="Failed", FailureReason=reason))
                    continue
                self._apply(name, _forget_pending_update)
                pending[name] = self._executor.submit(self.run_create, name, config)
        concurrent.futures.wait(pending.values())

    def stop(self) -> None:
        with self._processes_lock:
            self._stopping = True  # no deploy in progress starts another server from now on
            launched = list(self._processes)
        # In parallel: each gets SIGTERM and a grace period; one at a time would add them up.
        stopping = [threading.Thread(target=stop_process, args=(process,)) for process in launched]
        for thread in stopping:
            thread.start()
        for thread in stopping:
            thread.join()
        self._executor.shutdown(wait=True, cancel_futures=True)  # deploys in progress fail fast now
        for name in list(self._live):
            deployment = self._live.pop(name, None)
            if deployment:
                deployment.stop()


def _resolved(image: str) -> str:
    """`repo@sha256:<digest of the Dockerfile it maps to>`: changes exactly when the image would."""
    try:
        spec = images.resolve(image)
    except images.ImageNotFound:
        return image
    digest = hashlib.sha256(spec.dockerfile.read_bytes()).hexdigest()
    base = image.split("@", 1)[0]
    repository = base[: base.rfind(":")] if base.rfind(":") > base.rfind("/") else base  # drop the tag, keep a registry port
    return f"{repository}@sha256:{digest}"


def _forget_pending_update(record: dict) -> None:
    """An update a restart interrupted never happened: the config that was serving comes back."""
    if record.pop("PendingDeploymentSummary", None) is not None:
        record["EndpointStatus"] = "InService"


def _set_capture_summary(record: dict, config: dict) -> None:
    capture = config.get("DataCaptureConfig")
    if not capture:
        record.pop("DataCaptureConfig", None)
        return
    enabled = capture.get("EnableCapture", True)
    record["DataCaptureConfig"] = {
        "EnableCapture": enabled,
        "CaptureStatus": "Started" if enabled else "Stopped",
        "CurrentSamplingPercentage": capture["InitialSamplingPercentage"],
        "DestinationS3Uri": capture["DestinationS3Uri"],
        "KmsKeyId": capture.get("KmsKeyId", ""),
    }


def _wait_briefly(future: concurrent.futures.Future) -> None:
    concurrent.futures.wait([future], timeout=SYNC_DEPLOY_SECONDS)


# --- handlers: models -------------------------------------------------------------------------

def create_model(platform: LocalPlatform, params: dict) -> dict:
    name = params["ModelName"]
    _must_not_exist(platform, "Model", name)
    container = _single_container(params)
    if "Image" not in container:
        raise ValidationError("the model's container must name an Image")
    try:
        images.resolve(container["Image"])
    except images.ImageNotFound as error:
        raise ValidationError(f"Requested image {container['Image']} not found ({error}).") from None
    run_safety.refuse(run_safety.environment_problems(container.get("Environment"), "Container Environment"))
    if "ModelDataSource" in container:
        raise ValidationError("the local stack reads model artifacts from ModelDataUrl (a model.tar.gz); ModelDataSource is not supported")
    if "ModelDataUrl" in container:
        _check_model_data(platform, container["ModelDataUrl"])
    record = {
        **_described(params, "DescribeModelOutput"),
        "ModelArn": _arn(platform, "Model", name),
        "CreationTime": platform.timestamp(),
        "EnableNetworkIsolation": params.get("EnableNetworkIsolation", False),
    }
    platform.store.put("Model", name, record)
    return {"ModelArn": record["ModelArn"]}


def _check_model_data(platform: LocalPlatform, url: str) -> None:
    try:
        location = storage.S3Location.parse(url)
        platform.aws_client("s3").head_object(Bucket=location.bucket, Key=location.key)
    except (storage.StorageError, ClientError):
        raise ValidationError(f"Could not access model data at {url}. Please ensure that the object exists in the stack's S3.") from None


def describe_model(platform: LocalPlatform, params: dict) -> dict:
    return get_resource(platform, "Model", params["ModelName"])


def delete_model(platform: LocalPlatform, params: dict) -> dict:
    get_resource(platform, "Model", params["ModelName"])
    platform.store.delete("Model", params["ModelName"])
    return {}


# --- handlers: endpoint configs ---------------------------------------------------------------

def create_endpoint_config(platform: LocalPlatform, params: dict) -> dict:
    name = params["EndpointConfigName"]
    _must_not_exist(platform, "EndpointConfig", name)
    seen = set()
    for variant in params["ProductionVariants"]:
        if variant["VariantName"] in seen:
            raise ValidationError(f"variant name {variant['VariantName']!r} appears more than once in ProductionVariants")
        seen.add(variant["VariantName"])
        if "ModelName" not in variant:
            raise ValidationError(f"variant {variant['VariantName']!r} names no ModelName (inference components are not supported locally)")
        get_resource(platform, "Model", variant["ModelName"])
    record = {
        **_described(params, "DescribeEndpointConfigOutput"),
        "EndpointConfigArn": _arn(platform, "EndpointConfig", name),
        "CreationTime": platform.timestamp(),
    }
    platform.store.put("EndpointConfig", name, record)
    return {"EndpointConfigArn": record["EndpointConfigArn"]}


def describe_endpoint_config(platform: LocalPlatform, params: dict) -> dict:
    return get_resource(platform, "EndpointConfig", params["EndpointConfigName"])


def delete_endpoint_config(platform: LocalPlatform, params: dict) -> dict:
    get_resource(platform, "EndpointConfig", params["EndpointConfigName"])  # AWS allows deleting one in use
    platform.store.delete("EndpointConfig", params["EndpointConfigName"])
    return {}


# --- handlers: endpoints ----------------------------------------------------------------------

def create_endpoint(platform: LocalPlatform, params: dict) -> dict:
    name, hosting = params["EndpointName"], platform.hosting
    with hosting.endpoint_lock(name):
        _must_not_exist(platform, "Endpoint", name)
        config = get_resource(platform, "EndpointConfig", params["EndpointConfigName"])
        now = platform.timestamp()
        record = {
            "EndpointName": name,
            "EndpointArn": _arn(platform, "Endpoint", name),
            "EndpointConfigName": config["EndpointConfigName"],
            "EndpointStatus": "Creating",
            "CreationTime": now,
            "LastModifiedTime": now,
        }
        if "DeploymentConfig" in params:
            record["LastDeploymentConfig"] = params["DeploymentConfig"]
        platform.store.put("Endpoint", name, record)
    _wait_briefly(hosting._executor.submit(hosting.run_create, name, config))
    return {"EndpointArn": record["EndpointArn"]}


def describe_endpoint(platform: LocalPlatform, params: dict) -> dict:
    return get_resource(platform, "Endpoint", params["EndpointName"])


def update_endpoint(platform: LocalPlatform, params: dict) -> dict:
    name, hosting = params["EndpointName"], platform.hosting
    with hosting.endpoint_lock(name):
        record = get_resource(platform, "Endpoint", name)
        config = get_resource(platform, "EndpointConfig", params["EndpointConfigName"])
        status = record["EndpointStatus"]
        if status in _IN_PROGRESS:
            raise ValidationError(f'Cannot update in-progress endpoint "{record["EndpointArn"]}".')
        if status != "InService":
            raise ValidationError(f'Cannot update endpoint "{record["EndpointArn"]}" in status {status}; only DeleteEndpoint is possible.')
        if params.get("RetainAllVariantProperties"):
            config = _retain_variant_properties(record, config, params.get("ExcludeRetainedVariantProperties", []))
        deployment_config = params.get("DeploymentConfig")
        if deployment_config is None and params.get("RetainDeploymentConfig"):
            deployment_config = record.get("LastDeploymentConfig")
        now = platform.timestamp()
        pending = [
            {**summary, "VariantStatus": [{"Status": "Creating", "StartTime": now}]}
            for summary in hosting._summaries(config)
        ]
        record.update(EndpointStatus="Updating", LastModifiedTime=now)
        record["PendingDeploymentSummary"] = {
            "EndpointConfigName": config["EndpointConfigName"],
            "ProductionVariants": pending,
            "StartTime": now,
        }
        platform.store.put("Endpoint", name, record)
    _wait_briefly(hosting._executor.submit(hosting.run_update, name, config, deployment_config))
    return {"EndpointArn": record["EndpointArn"]}


def _retain_variant_properties(record: dict, config: dict, excluded: list[dict]) -> dict:
    """Keep the live weights and instance counts of variants the new config also has."""
    excluded_names = {item["VariantPropertyType"] for item in excluded}
    current = {summary["VariantName"]: summary for summary in record.get("ProductionVariants", [])}
    variants = []
    for variant in config["ProductionVariants"]:
        live = current.get(variant["VariantName"])
        variant = dict(variant)
        if live and "DesiredWeight" not in excluded_names and "CurrentWeight" in live:
            variant["InitialVariantWeight"] = live["CurrentWeight"]
        if live and "DesiredInstanceCount" not in excluded_names and "CurrentInstanceCount" in live:
            variant["InitialInstanceCount"] = live["CurrentInstanceCount"]
        variants.append(variant)
    return {**config, "ProductionVariants": variants}


def update_endpoint_weights_and_capacities(platform: LocalPlatform, params: dict) -> dict:
    name, hosting = params["EndpointName"], platform.hosting
    with hosting.endpoint_lock(name):
        record = get_resource(platform, "Endpoint", name)
        if record["EndpointStatus"] != "InService":
            raise ValidationError(f'Cannot update in-progress endpoint "{record["EndpointArn"]}".')
        summaries = {summary["VariantName"]: summary for summary in record.get("ProductionVariants", [])}
        unknown = [item["VariantName"] for item in params["DesiredWeightsAndCapacities"] if item["VariantName"] not in summaries]
        if unknown:
            raise ValidationError(f"The variant(s) {unknown} are not part of endpoint {name}.")
        live = hosting.live(name)
        for item in params["DesiredWeightsAndCapacities"]:
            summary = summaries[item["VariantName"]]
            if "DesiredWeight" in item:
                summary["CurrentWeight"] = summary["DesiredWeight"] = item["DesiredWeight"]
                if live and item["VariantName"] in live.variants:
                    live.variants[item["VariantName"]].weight = float(item["DesiredWeight"])
            if "DesiredInstanceCount" in item:
                summary["CurrentInstanceCount"] = summary["DesiredInstanceCount"] = item["DesiredInstanceCount"]
        record["LastModifiedTime"] = platform.timestamp()
        platform.store.put("Endpoint", name, record)
    return {"EndpointArn": record["EndpointArn"]}


def delete_endpoint(platform: LocalPlatform, params: dict) -> dict:
    name, hosting = params["EndpointName"], platform.hosting
    with hosting.endpoint_lock(name):
        get_resource(platform, "Endpoint", name)
        deployment = hosting._live.pop(name, None)
        platform.store.delete("Endpoint", name)
    if deployment:
        deployment.stop()  # flushes captures, stops the servers
    return {}


# --- handlers: listings -----------------------------------------------------------------------

def _lister(kind: str, result_key: str, name_key: str, summary_keys: tuple[str, ...], sort_keys: dict[str, str]):
    def handler(platform: LocalPlatform, params: dict) -> dict:
        records = platform.store.list(kind)
        if "NameContains" in params:
            records = [r for r in records if params["NameContains"].lower() in r[name_key].lower()]
        if "StatusEquals" in params:
            records = [r for r in records if r.get("EndpointStatus") == params["StatusEquals"]]
        for suffix, field_name in (("CreationTime", "CreationTime"), ("LastModifiedTime", "LastModifiedTime")):
            if f"{suffix}Before" in params:
                records = [r for r in records if to_datetime(r[field_name]) < params[f"{suffix}Before"]]
            if f"{suffix}After" in params:
                records = [r for r in records if to_datetime(r[field_name]) > params[f"{suffix}After"]]
        sort_field = sort_keys[params.get("SortBy", "CreationTime")]
        records.sort(
            key=lambda r: to_datetime(r[sort_field]) if sort_field.endswith("Time") else r[sort_field],
            reverse=params.get("SortOrder", "Descending") == "Descending",
        )
        start = _token(params.get("NextToken"))
        size = params.get("MaxResults", 10)  # SageMaker's List* default
        page = records[start:start + size]
        result = {result_key: [{key: r[key] for key in summary_keys if key in r} for r in page]}
        if start + size < len(records):
            result["NextToken"] = str(start + size)
        return result

    return handler


def _token(token: str | None) -> int:
    if token is None:
        return 0
    if not token.isdigit():
        raise ValidationError(f"Invalid pagination token {token!r}.")
    return int(token)


list_models = _lister(
    "Model", "Models", "ModelName", ("ModelName", "ModelArn", "CreationTime"),
    {"Name": "ModelName", "CreationTime": "CreationTime"},
)
list_endpoint_configs = _lister(
    "EndpointConfig", "EndpointConfigs", "EndpointConfigName", ("EndpointConfigName", "EndpointConfigArn", "CreationTime"),
    {"Name": "EndpointConfigName", "CreationTime": "CreationTime"},
)
list_endpoints = _lister(
    "Endpoint", "Endpoints", "EndpointName",
    ("EndpointName", "EndpointArn", "CreationTime", "LastModifiedTime", "EndpointStatus"),
    {"Name": "EndpointName", "CreationTime": "CreationTime", "Status": "EndpointStatus"},
)

OPERATIONS = {
    "CreateModel": create_model,
    "DescribeModel": describe_model,
    "DeleteModel": delete_model,
    "ListModels": list_models,
    "CreateEndpointConfig": create_endpoint_config,
    "DescribeEndpointConfig": describe_endpoint_config,
    "DeleteEndpointConfig": delete_endpoint_config,
    "ListEndpointConfigs": list_endpoint_configs,
    "CreateEndpoint": create_endpoint,
    "DescribeEndpoint": describe_endpoint,
    "UpdateEndpoint": update_endpoint,
    "UpdateEndpointWeightsAndCapacities": update_endpoint_weights_and_capacities,
    "DeleteEndpoint": delete_endpoint,
    "ListEndpoints": list_endpoints,
}


def install(platform: LocalPlatform) -> None:
    platform.hosting = Hosting(platform)
    platform.register_operations("sagemaker", OPERATIONS)
    platform.on_stop(platform.hosting.stop)
