"""A SageMaker model served the way the PyTorch inference toolkit serves it.

A ``sagemaker`` model directory holds the model's files and, usually, ``code/inference.py``
(the manifest's ``file``). That script is the user's own code, run in the replica like a
training script runs in a job: its folder goes on ``sys.path`` and it is imported once, at
load. It may define any of the toolkit's functions; the rest are the defaults here:

* ``model_fn(model_dir)``: the model. Default: ``torch.jit.load`` of ``model.pt``, else of
  the directory's one ``.pt``/``.pth`` file (the manifest's file when it names no script).
  A script the manifest names but the directory lacks means the defaults throughout, as
  the toolkit does when ``SAGEMAKER_PROGRAM``'s module is not there.
* ``input_fn(request_body, content_type)``: the request as data. Default: JSON, CSV or
  .npy to a tensor on the replica's device (``sagemaker_codec.decode``). JSON and CSV
  bodies reach ``input_fn`` as ``str``, others as ``bytes``, as in the toolkit.
* ``predict_fn(data, model)``: default ``model(data)`` under ``torch.no_grad()``.
* ``output_fn(prediction, accept)``: bytes, str or ``(body, content_type)``. Default:
  JSON, CSV or .npy by Accept (``sagemaker_codec.encode``); anything else is a 406.
* ``transform_fn(model, body, content_type, accept)`` replaces the three above, and
  ``pre_model_fn(model_dir)`` / ``model_warmup_fn(model_dir, model)`` run around
  ``model_fn``. A function that takes one parameter more than the toolkit passes gets a
  :class:`Context` last (the toolkit's rule), whose ``custom_attributes`` is the
  request's ``X-Amzn-SageMaker-Custom-Attributes``.

A failure at load is a :class:`ModelLoadError` sentence. A failure in a request is a
:class:`HandlerError`: 500 with ``"<function> failed: <Type>: <message>"`` (or the status
an exception carries as ``status_code``, as the toolkit's own errors do), never a
traceback; the defaults' refusals of a bad body are 400, 406, 413 or 415.
"""

import importlib.util
import inspect
import logging
import sys
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import orjson

from naiad.core.errors import InvalidInput, NaiadError
from naiad.schemas.models import MANIFEST_FILE, ModelManifest
from naiad.serving import sagemaker_codec as wire
from naiad.serving.loader import ModelLoadError, first_line

log = logging.getLogger("naiad.serving")

DEFAULT_MODEL_FILE = "model.pt"
MODEL_SUFFIXES = (".pt", ".pth")
REQUIREMENTS = "requirements.txt"
CUSTOM_ATTRIBUTES = "x-amzn-sagemaker-custom-attributes"
REQUEST_FUNCTIONS = ("input_fn", "predict_fn", "output_fn", "transform_fn")
LOGGED_TRACEBACKS = 5  # failures logged with their traceback; later ones in one line


class HandlerError(NaiadError):
    """The inference script (or the model under a default handler) failed on a request."""

    status_code = 500
    code = "model_error"


@dataclass(frozen=True)
class Context:
    """What a handler that asks for one more argument gets: the toolkit's ``context``."""

    model_dir: str
    device: str
    request_headers: Mapping[str, str] = field(default_factory=dict)  # lower-case names

    @property
    def custom_attributes(self) -> str | None:
        """``X-Amzn-SageMaker-Custom-Attributes`` of the request, if it came with one."""
        return self.request_headers.get(CUSTOM_ATTRIBUTES)

    @property
    def system_properties(self) -> dict[str, Any]:
        kind, _, index = self.device.partition(":")
        gpu = (int(index) if index.isdigit() else 0) if kind == "cuda" else None
        return {"model_dir": self.model_dir, "gpu_id": gpu}


@dataclass(frozen=True)
class Request:
    """One invocation as the handlers see it: the body (str for JSON and CSV), the
    Content-Type (JSON when none was sent), the Accept (JSON for none or ``*/*``)."""

    body: bytes | str
    content_type: str
    accept: str
    headers: Mapping[str, str]


def make_request(
    body: bytes, content_type: str, accept: str, headers: Mapping[str, str]
) -> Request:
    """The request as the toolkit hands it to the handlers, or a 400 for a JSON or CSV
    body that is not UTF-8."""
    content_type = content_type.strip() or wire.JSON
    accept = accept.strip()
    if not accept or accept == "*/*":
        accept = wire.JSON
    payload: bytes | str = body
    if wire.media_type(content_type) in wire.TEXT_TYPES:
        try:
            payload = body.decode()
        except UnicodeDecodeError as exc:
            raise InvalidInput(f"A {content_type} body must be UTF-8 text: {exc}.") from None
    return Request(payload, content_type, accept, headers)


@dataclass(frozen=True)
class _Function:
    """A handler function and whether it takes the context as an extra, last argument."""

    name: str
    func: Callable[..., Any]
    given: int  # the arguments the toolkit passes
    user: bool  # the script's, not a default

    @property
    def takes_context(self) -> bool:
        try:
            params = list(inspect.signature(self.func).parameters.values())
        except (TypeError, ValueError):  # a builtin without a signature
            return False
        if any(p.kind is p.VAR_POSITIONAL for p in params):
            return False
        return len(params) == self.given + 1


def _sentence(text: str) -> str:
    text = text.strip()
    return text if text.endswith((".", "!", "?")) else text + "."


def _failure(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {first_line(exc)}"


class Handler:
    """A loaded SageMaker model: its model object and the chain that answers a request."""

    def __init__(
        self,
        directory: Path,
        script: str | None,
        module: ModuleType | None,
        device: str,
        max_rows: int | None,
        absent: str | None = None,
    ) -> None:
        """``script`` was imported as ``module``; ``absent`` names the one not found."""
        self.directory = directory
        self.script = script
        self.absent = absent
        self.device = device
        self.max_rows = max_rows
        self.model: Any = None
        found: dict[str, Callable[..., Any]] = {}
        for name in (*REQUEST_FUNCTIONS, "model_fn", "pre_model_fn", "model_warmup_fn"):
            func = getattr(module, name, None)
            if callable(func):
                found[name] = func
        self.defined = set(found)
        chain = self.defined & {"input_fn", "predict_fn", "output_fn"}
        if "transform_fn" in self.defined and chain:
            raise ModelLoadError(
                f"{script} defines transform_fn and also input_fn, predict_fn or output_fn; "
                "SageMaker takes one or the other, so keep transform_fn alone or remove it."
            )
        defaults: dict[str, Callable[..., Any]] = {
            "input_fn": self.default_input_fn,
            "predict_fn": self.default_predict_fn,
            "output_fn": self.default_output_fn,
        }
        given = {"input_fn": 2, "predict_fn": 2, "output_fn": 2, "transform_fn": 4}
        self._functions = {
            name: _Function(name, found.get(name) or defaults[name], given[name], name in found)
            for name in given
            if name in self.defined or name in defaults
        }
        self._context_args = {n: f.takes_context for n, f in self._functions.items()}
        self._load_functions = {
            name: _Function(name, found[name], count, True)
            for name, count in (("model_fn", 1), ("pre_model_fn", 1), ("model_warmup_fn", 2))
            if name in self.defined
        }
        self._failures = 0

    @property
    def batchable(self) -> bool:
        """True when every request function is a default: requests may share model calls."""
        return not self.defined & set(REQUEST_FUNCTIONS)

    @property
    def describe(self) -> str:
        what = ", ".join(sorted(self.defined)) or "no handler functions"
        if self.script:
            return f"{self.script} ({what})"
        if self.absent:
            return f"the default handlers ({self.absent} is not there)"
        return "the default handlers"

    @property
    def _no_model_fn(self) -> str:
        if self.script:
            return f"{self.script} defines no model_fn(model_dir)"
        return f"there is no {self.absent or 'code/inference.py'} defining model_fn(model_dir)"

    # -- load -------------------------------------------------------------------------------
    def load(self, model_file: str | None) -> None:
        """Run pre_model_fn, model_fn (or the default load) and model_warmup_fn."""
        context = Context(str(self.directory), self.device)
        model_dir = str(self.directory)
        if "pre_model_fn" in self._load_functions:
            self._at_load("pre_model_fn", context, model_dir)
        if "model_fn" in self._load_functions:
            self.model = self._at_load("model_fn", context, model_dir)
        else:
            self.model = self.default_model_fn(model_file)
        if "predict_fn" not in self.defined and "transform_fn" not in self.defined:
            self._place_for_default_predict()
        if "model_warmup_fn" in self._load_functions:
            self._at_load("model_warmup_fn", context, model_dir, self.model)

    def _at_load(self, name: str, context: Context, *args: Any) -> Any:
        function = self._load_functions[name]
        try:
            if function.takes_context:
                return function.func(*args, context)
            return function.func(*args)
        except (Exception, SystemExit) as exc:
            raise ModelLoadError(
                _sentence(f"{name} in {self.script} failed: {_failure(exc)}")
            ) from None

    def default_model_fn(self, model_file: str | None) -> Any:
        """``torch.jit.load`` of ``model_file``, else of model.pt or the one .pt/.pth file."""
        import torch

        path = self._default_model_path() if model_file is None else self.directory / model_file
        if not path.is_file():
            raise ModelLoadError(
                f"{MANIFEST_FILE} names {model_file!r}, which is not in {self.directory}."
            )
        try:
            with warnings.catch_warnings():  # deprecated in torch 2.13; still loads and runs
                warnings.simplefilter("ignore", DeprecationWarning)
                return torch.jit.load(str(path), map_location=self.device).eval()
        except Exception as exc:
            where = self.script or self.absent or "code/inference.py"
            raise ModelLoadError(
                f"{path.name} is not a TorchScript file torch.jit.load can read "
                f"({first_line(exc)}); save it with torch.jit.script(model).save(...), or define "
                f"model_fn(model_dir) in {where} to load it."
            ) from None

    def _default_model_path(self) -> Path:
        path = self.directory / DEFAULT_MODEL_FILE
        if path.is_file():
            return path
        found = sorted(
            p.name for p in self.directory.iterdir() if p.is_file() and p.suffix in MODEL_SUFFIXES
        )
        if len(found) == 1:
            return self.directory / found[0]
        if not found:
            raise ModelLoadError(
                f"There is nothing to load in {self.directory}: it has no {DEFAULT_MODEL_FILE} "
                f"or other .pt/.pth file, and {self._no_model_fn} to load the model another way."
            )
        raise ModelLoadError(
            f"{self.directory} has several model files ({', '.join(found)}) and no "
            f"{DEFAULT_MODEL_FILE}, and {self._no_model_fn} to choose; "
            f"name the one to serve {DEFAULT_MODEL_FILE}, or define model_fn."
        )

    def _place_for_default_predict(self) -> None:
        """What the toolkit's default predict_fn does before each call, done once."""
        model = self.model
        if callable(getattr(model, "to", None)):
            moved = model.to(self.device)
            self.model = model if moved is None else moved
        if callable(getattr(self.model, "eval", None)):
            self.model.eval()

    # -- the default request functions -------------------------------------------------------
    def default_input_fn(self, body: bytes | str, content_type: str) -> Any:
        import torch

        tensor = torch.from_numpy(wire.decode(body, content_type, self.max_rows))
        return tensor if self.device == "cpu" else tensor.to(self.device)

    def default_predict_fn(self, data: Any, model: Any) -> Any:
        import torch

        if isinstance(data, torch.Tensor) and data.device != torch.device(self.device):
            data = data.to(self.device)
        with torch.no_grad():
            return model(data)

    def default_output_fn(self, prediction: Any, accept: str) -> tuple[bytes, str]:
        media = wire.negotiate(accept)
        value = to_numpy(prediction)
        try:
            return wire.encode(value, media), media
        except (TypeError, ValueError) as exc:
            raise HandlerError(
                f"The default output_fn cannot write the prediction ({type(prediction).__name__}) "
                f"as {media} ({first_line(exc)}); define output_fn in the inference script."
            ) from None

    # -- a request ----------------------------------------------------------------------------
    def infer(self, batch: np.ndarray) -> np.ndarray:
        """The batcher's model call (default handlers only): rows in, rows out."""
        import torch

        data = torch.from_numpy(batch)
        if self.device != "cpu":
            data = data.to(self.device)
        out = self.model(data)
        if not isinstance(out, torch.Tensor):
            raise TypeError(
                f"the model returned {type(out).__name__}, not one tensor; define output_fn in "
                "the inference script to write it"
            )
        return to_numpy(out)

    def invoke(self, request: Request) -> tuple[bytes, str]:
        """Run the chain on one request: (response body, its Content-Type)."""
        context = Context(str(self.directory), self.device, request.headers)
        if "transform_fn" in self._functions:
            result = self._call(
                "transform_fn",
                context,
                self.model,
                request.body,
                request.content_type,
                request.accept,
            )
        else:
            data = self._call("input_fn", context, request.body, request.content_type)
            prediction = self._call("predict_fn", context, data, self.model)
            result = self._call("output_fn", context, prediction, request.accept)
        return self._response(result, request.accept)

    def _call(self, name: str, context: Context, *args: Any) -> Any:
        function = self._functions[name]
        try:
            if self._context_args[name]:
                return function.func(*args, context)
            return function.func(*args)
        except NaiadError:
            raise  # a default's refusal of the body: its own 4xx
        except Exception as exc:
            raise self._failed(function, exc) from None

    def _failed(self, function: _Function, exc: Exception) -> HandlerError:
        label = function.name if function.user else f"the default {function.name}"
        error = HandlerError(_sentence(f"{label} failed: {_failure(exc)}"))
        status = getattr(exc, "status_code", None)
        if isinstance(status, int) and 400 <= status <= 599:
            error.status_code = status  # the toolkit's errors carry the status to answer
        self._failures += 1
        log.warning("%s", error.message, exc_info=self._failures <= LOGGED_TRACEBACKS)
        return error

    def _response(self, result: Any, accept: str) -> tuple[bytes, str]:
        content_type: Any = accept
        if isinstance(result, tuple) and len(result) == 2:
            result, content_type = result
        if isinstance(content_type, bytes):
            content_type = content_type.decode("latin-1")
        if (
            not isinstance(content_type, str)
            or not content_type.isascii()
            or not content_type.isprintable()
        ):
            raise HandlerError(
                f"The output function returned the content type {content_type!r}; it must be "
                "a media type such as application/json."
            )
        if isinstance(result, bytes | bytearray | memoryview):
            return bytes(result), content_type
        if isinstance(result, str):
            return result.encode(), content_type
        try:  # what a model server does with anything else: JSON
            body = orjson.dumps(result, default=wire.plain, option=orjson.OPT_SERIALIZE_NUMPY)
        except TypeError as exc:
            raise HandlerError(
                f"The output function returned {type(result).__name__}, which is not bytes or "
                f"str and cannot be written as JSON ({exc}); return bytes or str."
            ) from None
        return body, content_type


def to_numpy(value: Any) -> Any:
    """A tensor as a numpy array on the CPU (bfloat16 as float32); anything else as it is."""
    if not hasattr(value, "detach"):
        return value
    import torch

    if not isinstance(value, torch.Tensor):
        return value
    value = value.detach()
    if value.device.type != "cpu":
        value = value.cpu()
    if value.dtype == torch.bfloat16:  # numpy has no bfloat16
        value = value.float()
    return np.ascontiguousarray(value.numpy())


def _import(directory: Path, script: str) -> ModuleType:
    """Import the inference script with its folder first on ``sys.path`` (its own modules)."""
    path = directory / script
    if not path.is_file():
        raise ModelLoadError(
            f"{MANIFEST_FILE} names the inference script {script!r}, which is not in {directory}."
        )
    folder = str(path.parent)
    if folder not in sys.path:
        sys.path.insert(0, folder)
    name = path.stem
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    registered = name not in sys.modules  # never shadow a module already imported
    if registered:
        sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except (Exception, SystemExit) as exc:
        if registered:
            sys.modules.pop(name, None)
        hint = ""
        if isinstance(exc, ImportError) and (path.parent / REQUIREMENTS).is_file():
            hint = (
                f"; {path.parent.name}/{REQUIREMENTS} is not installed by Naiad, so install "
                "what it lists where the server runs"
            )
        raise ModelLoadError(
            _sentence(f"{script} failed to import: {_failure(exc)}{hint}")
        ) from None
    return module


def load_handler(
    directory: str | Path,
    manifest: ModelManifest,
    *,
    device: str = "cpu",
    max_rows: int | None = None,
) -> Handler:
    """Import the manifest's inference script (when ``file`` is a ``.py``) and load the
    model through it; without a script, ``file`` is the TorchScript file to load."""
    directory = Path(directory)
    if not manifest.file.endswith(".py"):
        handler = Handler(directory, None, None, device, max_rows)
        handler.load(manifest.file)
        return handler
    if not (directory / manifest.file).is_file():
        handler = Handler(directory, None, None, device, max_rows, absent=manifest.file)
    else:
        module = _import(directory, manifest.file)
        handler = Handler(directory, manifest.file, module, device, max_rows)
    handler.load(None)
    return handler
