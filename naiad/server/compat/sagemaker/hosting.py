"""Hosting: models, endpoint configs and endpoints over Naiad's registry and endpoints.

``CreateModel`` registers a new version of the Naiad model of that name (lower-cased)
from ``ModelDataUrl``; an endpoint config is only what SageMaker's API shows (variants
naming models); ``CreateEndpoint`` deploys those versions as a Naiad endpoint whose
variants keep their SageMaker names, and ``UpdateEndpoint`` rolls out with Naiad's
zero-failure rollout. A variant's ``ManagedInstanceScaling`` (when ENABLED) is Naiad's
autoscaling between its instance counts, down to zero with a ``MinInstanceCount`` of 0.
"""

import functools
import io
import tarfile
import zlib
from typing import Any

from naiad.core.errors import Conflict, InvalidInput, NaiadError, NotFound
from naiad.core.status import EndpointStatus
from naiad.schemas.endpoints import (
    AutoscalingSpec,
    CaptureSpec,
    EndpointCreate,
    EndpointUpdate,
    VariantSpec,
)
from naiad.schemas.models import Lineage
from naiad.server.compat.awsjson import AwsError, Context, not_found
from naiad.server.compat.listing import Fields, page
from naiad.server.compat.sagemaker.images import framework
from naiad.server.compat.sagemaker.operations import ROW_FIELDS, arn, operation, resource, tag_dict
from naiad.services import endpoints as endpoint_service
from naiad.services import model_files
from naiad.services import models as model_service
from naiad.services.models import GuessManifest
from naiad.store import aws_resources, endpoints, models
from naiad.store.artifacts import safe_path
from naiad.store.artifacts.buckets import locate
from naiad.store.tables import AwsResourceRow

MODEL, CONFIG, ENDPOINT = "Model", "EndpointConfig", "Endpoint"
MAX_CODE_BYTES = 64 * 1024 * 1024


def _validation(exc: NaiadError) -> AwsError:
    return AwsError("ValidationException", exc.message)


def _unique(ctx: Context, kind: str, name: str, what: str) -> None:
    if aws_resources.find(ctx.session, kind, name) is not None:
        raise AwsError(
            "ValidationException",
            f'Cannot create already existing {what} "{arn(ctx, kind, name)}".',
        )


# -- models --------------------------------------------------------------------------------


def _container(params: dict[str, Any]) -> dict[str, Any]:
    if "PrimaryContainer" in params:
        return params["PrimaryContainer"]
    containers = params.get("Containers") or []
    if len(containers) != 1:
        raise AwsError(
            "ValidationException",
            "Give PrimaryContainer (or exactly one entry in Containers): Naiad serves one "
            "container per model; inference pipelines are not supported.",
        )
    return containers[0]


def _add_code(ctx: Context, uri: str) -> Any:
    """A function that unpacks the ``SAGEMAKER_SUBMIT_DIRECTORY`` archive into ``code/``
    of a new version, as the inference toolkit does in the container."""
    store, path = locate(uri, ctx.state.artifacts, ctx.state.settings.s3_endpoint_url)
    try:
        if store.size(path) > MAX_CODE_BYTES:
            raise AwsError("ValidationException", f"{uri} is over {MAX_CODE_BYTES // 2**20} MiB.")
        data = store.get_bytes(path)
    except FileNotFoundError:
        raise AwsError(
            "ValidationException", f"SAGEMAKER_SUBMIT_DIRECTORY {uri} does not exist."
        ) from None

    def add(prefix: str) -> None:
        try:
            with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
                for member in tar.getmembers():
                    if not member.isfile():
                        continue
                    handle = tar.extractfile(member)
                    assert handle is not None
                    rel = safe_path(member.name.removeprefix("./"))
                    ctx.state.artifacts.put_stream(f"{prefix}/{model_files.CODE_DIR}/{rel}", handle)
        except (tarfile.TarError, EOFError, zlib.error) as exc:
            raise AwsError(
                "ValidationException", f"{uri} is not a readable .tar.gz ({exc})."
            ) from None

    return add


@operation("CreateModel")
def create_model(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    name = params["ModelName"]
    _unique(ctx, MODEL, name, "model")
    container = _container(params)
    request = {k: v for k, v in params.items() if k != "Tags"}
    tags = tag_dict(params.get("Tags"))
    if "ModelPackageName" in container:  # deploy a registered package: its version as it is
        ref = _package_ref(ctx, container["ModelPackageName"])
        aws_resources.create(ctx.session, MODEL, name, request, tags, ref=ref)
        return {"ModelArn": arn(ctx, MODEL, name)}
    if not container.get("ModelDataUrl"):
        raise AwsError(
            "ValidationException",
            "Give PrimaryContainer.ModelDataUrl, the s3:// URI of the model.tar.gz: Naiad "
            "serves model archives, not container images.",
        )
    ref = register_container(ctx, name.lower(), container, f"SageMaker model {name}")
    aws_resources.create(ctx.session, MODEL, name, request, tags, ref=ref)
    return {"ModelArn": arn(ctx, MODEL, name)}


def register_container(
    ctx: Context, model: str, container: dict[str, Any], description: str
) -> str:
    """A new version (``NAME:N``) of the Naiad model ``model`` from a container's
    ``ModelDataUrl``, its ``SAGEMAKER_SUBMIT_DIRECTORY`` code in ``code/``."""
    data_url = container["ModelDataUrl"]
    environment = container.get("Environment", {})
    submit_dir = environment.get("SAGEMAKER_SUBMIT_DIRECTORY", "")
    extra = _add_code(ctx, submit_dir) if submit_dir.startswith("s3://") else None
    state = ctx.state
    image = framework(container.get("Image", ""), state.settings.sagemaker_images)
    try:
        store, path = locate(data_url, state.artifacts, state.settings.s3_endpoint_url)
        if store is not state.artifacts:
            raise AwsError(
                "ValidationException",
                "Naiad registers models from its own artifact store; put the archive under "
                "the store's bucket.",
            )
        if not store.exists(path):
            raise AwsError("ValidationException", f"ModelDataUrl {data_url} does not exist.")
        version = model_service.register_archive(
            ctx.session,
            state.artifacts,
            model,
            path,
            Lineage(),
            description=description,
            guess=guess_manifest(environment, image),
            extra=extra,
        )
    except NaiadError as exc:
        raise _validation(exc) from None
    model_name, number = models.version_of(ctx.session, version.id)
    return f"{model_name}:{number}"


def _package_ref(ctx: Context, name_or_arn: str) -> str:
    """The Naiad version (NAME:N) of a versioned model package, by ARN or GROUP/N."""
    key = name_or_arn.split(":model-package/", 1)[-1].lower()
    for row in aws_resources.listed(ctx.session, "ModelPackage"):
        if row.name.lower() == key and row.ref:
            return row.ref
    raise AwsError("ValidationException", f"ModelPackage {name_or_arn} does not exist.")


def guess_manifest(environment: dict[str, str], image: str) -> GuessManifest:
    """The manifest of an archive that has none: a SageMaker one, whose handler is
    ``code/<SAGEMAKER_PROGRAM>`` (the toolkit's defaults serve it when there is none).
    A TensorFlow image's is TensorFlow Serving's: its model is described by loading it."""
    if image == "tensorflow":
        return model_files.infer_tensorflow_manifest
    program = environment.get("SAGEMAKER_PROGRAM", model_files.DEFAULT_PROGRAM)
    return functools.partial(model_files.infer_sagemaker_manifest, program=program)


@operation("DescribeModel")
def describe_model(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    name = params["ModelName"]
    row = resource(ctx, MODEL, name, f'Could not find model "{arn(ctx, MODEL, name)}".')
    request = row.request
    answer = {
        k: request[k]
        for k in ("ModelName", "PrimaryContainer", "Containers", "ExecutionRoleArn",
                  "VpcConfig", "EnableNetworkIsolation", "InferenceExecutionConfig")
        if k in request
    }  # fmt: skip
    answer.update(ModelArn=arn(ctx, MODEL, row.name), CreationTime=row.created_at)
    return answer


@operation("ListModels")
def list_models(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    rows = aws_resources.listed(ctx.session, MODEL)
    kept, token = page(rows, params, ROW_FIELDS)
    return {
        "Models": [
            {"ModelName": r.name, "ModelArn": arn(ctx, MODEL, r.name), "CreationTime": r.created_at}
            for r in kept
        ],
        "NextToken": token,
    }


@operation("DeleteModel")
def delete_model(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    """Only SageMaker's record goes: the registered version stays in Naiad's registry (an
    endpoint may still serve it, as on SageMaker)."""
    name = params["ModelName"]
    row = resource(ctx, MODEL, name, f'Could not find model "{arn(ctx, MODEL, name)}".')
    aws_resources.delete(ctx.session, row)
    return {}


# -- endpoint configs ----------------------------------------------------------------------


@operation("CreateEndpointConfig")
def create_endpoint_config(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    name = params["EndpointConfigName"]
    _unique(ctx, CONFIG, name, "endpoint configuration")
    names = [v["VariantName"] for v in params["ProductionVariants"]]
    if len(set(names)) != len(names):
        raise AwsError("ValidationException", "Variant names must be unique in a config.")
    for variant in params["ProductionVariants"]:
        if "ServerlessConfig" in variant and "InitialInstanceCount" not in variant:
            raise AwsError(
                "ValidationException",
                f"Variant {variant['VariantName']}: serverless variants are not supported; "
                "give InitialInstanceCount.",
            )
        model = variant.get("ModelName", "")
        if aws_resources.find(ctx.session, MODEL, model) is None:
            raise AwsError(
                "ValidationException", f'Could not find model "{arn(ctx, MODEL, model)}".'
            )
    request = {k: v for k, v in params.items() if k != "Tags"}
    aws_resources.create(ctx.session, CONFIG, name, request, tag_dict(params.get("Tags")))
    return {"EndpointConfigArn": arn(ctx, CONFIG, name)}


def _config(ctx: Context, name: str) -> AwsResourceRow:
    return resource(
        ctx, CONFIG, name, f'Could not find endpoint configuration "{arn(ctx, CONFIG, name)}".'
    )


@operation("DescribeEndpointConfig")
def describe_endpoint_config(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    row = _config(ctx, params["EndpointConfigName"])
    answer = dict(row.request)
    answer.update(EndpointConfigArn=arn(ctx, CONFIG, row.name), CreationTime=row.created_at)
    return answer


@operation("ListEndpointConfigs")
def list_endpoint_configs(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    rows = aws_resources.listed(ctx.session, CONFIG)
    kept, token = page(rows, params, ROW_FIELDS)
    return {
        "EndpointConfigs": [
            {
                "EndpointConfigName": r.name,
                "EndpointConfigArn": arn(ctx, CONFIG, r.name),
                "CreationTime": r.created_at,
            }
            for r in kept
        ],
        "NextToken": token,
    }


@operation("DeleteEndpointConfig")
def delete_endpoint_config(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    aws_resources.delete(ctx.session, _config(ctx, params["EndpointConfigName"]))
    return {}


# -- endpoints -----------------------------------------------------------------------------


def _autoscaling(variant: dict[str, Any]) -> AutoscalingSpec | None:
    """SageMaker's ManagedInstanceScaling, when enabled, as Naiad's autoscaling."""
    scaling = variant.get("ManagedInstanceScaling") or {}
    if scaling.get("Status") != "ENABLED":
        return None
    return AutoscalingSpec(
        min_replicas=scaling.get("MinInstanceCount", 1),
        max_replicas=scaling.get("MaxInstanceCount", variant.get("InitialInstanceCount", 1)),
    )


def _managed_scaling(scaling: AutoscalingSpec | None) -> dict[str, Any]:
    """A variant summary's ManagedInstanceScaling, for a variant that autoscales."""
    if scaling is None:
        return {}
    counts = {"MinInstanceCount": scaling.min_replicas, "MaxInstanceCount": scaling.max_replicas}
    return {"ManagedInstanceScaling": {"Status": "ENABLED", **counts}}


def _variants(ctx: Context, config: AwsResourceRow) -> list[VariantSpec]:
    out = []
    for variant in config.request["ProductionVariants"]:
        model = aws_resources.find(ctx.session, MODEL, variant["ModelName"])
        if model is None or model.ref is None:
            raise AwsError(
                "ValidationException",
                f'Could not find model "{arn(ctx, MODEL, variant["ModelName"])}".',
            )
        out.append(
            VariantSpec(
                model=model.ref,
                name=variant["VariantName"],
                weight=variant.get("InitialVariantWeight", 1.0),
                replicas=variant.get("InitialInstanceCount", 1),
                autoscaling=_autoscaling(variant),
            )
        )
    return out


def _capture(config: AwsResourceRow) -> CaptureSpec:
    capture = config.request.get("DataCaptureConfig") or {}
    if not capture.get("EnableCapture", True) or not capture:
        return CaptureSpec()
    return CaptureSpec(fraction=capture.get("InitialSamplingPercentage", 0) / 100)


@operation("CreateEndpoint")
def create_endpoint(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    name = params["EndpointName"]
    taken = aws_resources.find(ctx.session, ENDPOINT, name)
    if taken is not None:
        if endpoints.find_row(ctx.session, taken.ref or name.lower()) is not None:
            raise AwsError(
                "ValidationException",
                f'Cannot create already existing endpoint "{arn(ctx, ENDPOINT, name)}".',
            )
        aws_resources.delete(ctx.session, taken)  # its Naiad endpoint is gone: a new one
    config = _config(ctx, params["EndpointConfigName"])
    body = EndpointCreate(
        name=name.lower(), variants=_variants(ctx, config), capture=_capture(config)
    )
    try:
        row = endpoint_service.create(ctx.session, body)
    except InvalidInput as exc:
        raise _validation(exc) from None
    request = {k: v for k, v in params.items() if k != "Tags"}
    aws_resources.create(
        ctx.session, ENDPOINT, name, request, tag_dict(params.get("Tags")), ref=row.name
    )
    return {"EndpointArn": arn(ctx, ENDPOINT, name)}


def _endpoint(ctx: Context, name: str) -> tuple[AwsResourceRow, Any]:
    missing = f'Could not find endpoint "{arn(ctx, ENDPOINT, name)}".'
    row = resource(ctx, ENDPOINT, name, missing)
    naiad = endpoints.find_row(ctx.session, row.ref or name.lower())
    if naiad is None:  # deleted, by this API or Naiad's own (CreateEndpoint reuses the name)
        raise not_found(missing)
    return row, naiad


@operation("DescribeEndpoint")
def describe_endpoint(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    row, naiad = _endpoint(ctx, params["EndpointName"])
    spec = naiad.spec
    live: dict[str, Any] = {}
    from naiad.server.controller.endpoints import EndpointKeeper

    keeper = ctx.state.services.get(EndpointKeeper)
    if keeper is not None:
        live = keeper.live(naiad.name)
    pending = {v.name: v for v in spec.pending.variants} if spec.pending else {}
    variants = []
    for v in spec.variants or (spec.pending.variants if spec.pending else []):
        healthy = sum(1 for r in live.get(v.key, []) if r.healthy and r.index < v.replicas)
        desired = pending.get(v.name, v)
        variants.append(
            {
                "VariantName": v.name,
                "CurrentWeight": v.weight,
                "DesiredWeight": desired.weight,
                "CurrentInstanceCount": healthy,
                "DesiredInstanceCount": desired.replicas,
                "DeployedImages": [],
                **_managed_scaling(desired.autoscaling),
            }
        )
    answer: dict[str, Any] = {
        "EndpointName": row.name,
        "EndpointArn": arn(ctx, ENDPOINT, row.name),
        "EndpointConfigName": row.request["EndpointConfigName"],
        "ProductionVariants": variants,
        "EndpointStatus": naiad.status,
        "CreationTime": naiad.created_at,
        "LastModifiedTime": naiad.updated_at,
    }
    if naiad.status == EndpointStatus.FAILED.value and naiad.status_reason:
        answer["FailureReason"] = naiad.status_reason
    return answer


@operation("ListEndpoints")
def list_endpoints(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    pairs = []
    for row in aws_resources.listed(ctx.session, ENDPOINT):
        naiad = endpoints.find_row(ctx.session, row.ref or row.name.lower())
        if naiad is not None:
            pairs.append((row, naiad))
    fields: Fields[tuple[AwsResourceRow, Any]] = Fields(
        name=lambda p: p[0].name,
        created=lambda p: p[1].created_at,
        status=lambda p: p[1].status,
        modified=lambda p: p[1].updated_at,
    )
    kept, token = page(pairs, params, fields)
    return {
        "Endpoints": [
            {
                "EndpointName": r.name,
                "EndpointArn": arn(ctx, ENDPOINT, r.name),
                "CreationTime": n.created_at,
                "LastModifiedTime": n.updated_at,
                "EndpointStatus": n.status,
            }
            for r, n in kept
        ],
        "NextToken": token,
    }


def _update(ctx: Context, naiad_name: str, body: EndpointUpdate) -> None:
    try:
        endpoint_service.update(ctx.session, naiad_name, body)
    except NotFound as exc:
        raise not_found(exc.message) from None
    except Conflict as exc:  # Creating, Updating or Deleting: SageMaker's own answer
        raise AwsError("ValidationException", exc.message) from None


@operation("UpdateEndpoint")
def update_endpoint(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    row, naiad = _endpoint(ctx, params["EndpointName"])
    config = _config(ctx, params["EndpointConfigName"])
    _update(
        ctx, naiad.name, EndpointUpdate(variants=_variants(ctx, config), capture=_capture(config))
    )
    aws_resources.update(
        ctx.session, row, request={**row.request, "EndpointConfigName": config.name}
    )
    return {"EndpointArn": arn(ctx, ENDPOINT, row.name)}


@operation("UpdateEndpointWeightsAndCapacities")
def update_weights(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    row, naiad = _endpoint(ctx, params["EndpointName"])
    if naiad.status != EndpointStatus.IN_SERVICE.value:
        raise AwsError(
            "ValidationException",
            f"Endpoint {row.name} is {naiad.status}; its weights and capacities can be "
            "changed once it is InService.",
        )
    current = {v.name: v for v in naiad.spec.variants}
    changes = {d["VariantName"]: d for d in params["DesiredWeightsAndCapacities"]}
    unknown = sorted(set(changes) - set(current))
    if unknown:
        raise AwsError(
            "ValidationException",
            f"The endpoint has no variant {', '.join(unknown)}; it has {', '.join(current)}.",
        )
    variants = []
    for name, v in current.items():
        change = changes.get(name, {})
        variants.append(
            VariantSpec(
                model=v.model,
                name=name,
                weight=change.get("DesiredWeight", v.weight),
                replicas=change.get("DesiredInstanceCount", max(v.replicas, 1)),
                autoscaling=v.autoscaling,
            )
        )
    _update(ctx, naiad.name, EndpointUpdate(variants=variants))
    return {"EndpointArn": arn(ctx, ENDPOINT, row.name)}


@operation("DeleteEndpoint")
def delete_endpoint(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    _row, naiad = _endpoint(ctx, params["EndpointName"])
    if naiad.status != EndpointStatus.DELETING.value:
        endpoint_service.delete(ctx.session, naiad.name)
    return {}
