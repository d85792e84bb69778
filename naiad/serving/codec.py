"""Request bodies to arrays checked against the model's signature, and arrays to responses.

Wire format (``POST /invocations``):

* ``application/json`` (also when no Content-Type is sent): ``{"inputs": [...]}``,
  ``{"instances": [...]}`` (TF Serving's name for the same thing) or a bare array.
  A response is ``{"predictions": [...]}``, plus ``"labels"`` (the class name of each
  row's largest output) when the manifest has ``classes`` and outputs are ``[N, C]``.
* ``text/csv``: one example per line, its values flattened in row-major order, no
  header (SageMaker's convention); rows are reshaped to the signature.
* ``application/x-npy``: the bytes of ``numpy.save`` (never unpickled). Send
  ``Accept: application/x-npy`` to get the predictions back the same way (no labels).

A request holds at most ``max_rows`` rows (10,000 by default): a larger one is a 413
that says to split it, so one client cannot hold a replica for seconds.

The batch dimension may be left out for a single example: inputs with one dimension
fewer than the signature are a batch of one. Predictions always keep the batch dimension,
so a client reads them the same way whatever it sent.

Dtype rules: an input is cast to the signature's dtype when no information is lost by
kind: integers and floats into a float model; integers (in range) into an integer model;
booleans into a bool model. Floats into an integer model, strings, nulls and booleans
into a number model are refused. ``bfloat16`` models take float32 on the wire.
"""

import io
import math

import numpy as np
import orjson
from numpy.lib import format as npy_format

from naiad.core.errors import InvalidInput, NaiadError, PayloadTooLarge
from naiad.schemas.models import ModelManifest, TensorSpec

JSON = b"application/json"
NPY = b"application/x-npy"
CSV = b"text/csv"
DEFAULT_MAX_ROWS = 10_000
_SUPPORTED = (
    'Content-Type: application/json with {"inputs": [...]}, text/csv (one example per '
    "line, no header) or application/x-npy (numpy.save bytes)"
)

# The kinds of numpy dtype each signature dtype accepts (b: bool, i/u: int, f: float).
_ACCEPTS = {"f": "fiu", "i": "iu", "u": "iu", "b": "b"}
_KIND_NAMES = {"b": "booleans", "i": "integers", "u": "integers", "f": "floats"}


class UnsupportedMediaType(NaiadError):
    """The request's Content-Type is not one the replica decodes."""

    status_code = 415
    code = "unsupported_media_type"


def _wire_dtype(spec: TensorSpec) -> np.dtype:
    return np.dtype("float32" if spec.dtype == "bfloat16" else spec.dtype)


class Codec:
    """Decode and encode for one model: its checks are precomputed once, not per request."""

    def __init__(self, manifest: ModelManifest, max_rows: int = DEFAULT_MAX_ROWS) -> None:
        if manifest.signature is None:
            raise ValueError(f"A {manifest.format} manifest without a signature has no codec.")
        spec = manifest.signature.inputs
        self.max_rows = max_rows
        self.spec = spec
        self.dtype = _wire_dtype(spec)
        self.accepts = _ACCEPTS[self.dtype.kind]
        self.ndim = len(spec.shape)
        self.fixed = [(i, d) for i, d in enumerate(spec.shape) if i > 0 and d != -1]
        # Without free dimensions, one tuple comparison checks the whole example shape.
        self.example = tuple(spec.shape[1:]) if -1 not in spec.shape[1:] else None
        self.classes = manifest.classes
        self.limits = np.iinfo(self.dtype) if self.dtype.kind in "iu" else None

    def _refuse(self, got: str) -> InvalidInput:
        return InvalidInput(f"inputs must be {self.spec.describe()}; got {got}.")

    def check(self, array: np.ndarray) -> np.ndarray:
        """The array as a batch of the signature's dtype and shape, or a 400 saying why."""
        if array.ndim and array.shape[0] == 0:
            raise self._refuse("an empty batch")
        kind = array.dtype.kind
        if kind not in self.accepts:
            what = _KIND_NAMES.get(kind, f"dtype {array.dtype}")
            if kind in "OUS":
                what = "values that are not all numbers (strings, nulls or nested objects)"
            raise self._refuse(what)
        if array.ndim == self.ndim - 1:
            array = array[np.newaxis]  # a single example: a batch of one
        if array.ndim and array.shape[0] > self.max_rows:
            raise PayloadTooLarge(
                f"This request holds {array.shape[0]} rows; this replica takes at most "
                f"{self.max_rows} per request. Split it into requests of {self.max_rows} rows "
                "or fewer: sent together, they are batched just the same."
            )
        if self.example is not None:
            if array.shape[1:] != self.example or array.ndim != self.ndim:
                raise self._refuse(f"shape {list(array.shape)}")
        elif array.ndim != self.ndim or any(array.shape[i] != d for i, d in self.fixed):
            raise self._refuse(f"shape {list(array.shape)}")
        if self.limits is not None and array.size and kind in "iu":
            low, high = array.min(), array.max()
            if low < self.limits.min or high > self.limits.max:
                raise self._refuse(f"values from {low} to {high}, outside {self.dtype}'s range")
        if array.dtype != self.dtype or not array.flags.writeable:  # .npy bodies are read-only
            array = array.astype(self.dtype)
        return array

    def decode(self, body: bytes, content_type: bytes) -> np.ndarray:
        """A request body of ``content_type`` (header value, parameters allowed)."""
        media = content_type.split(b";", 1)[0].strip().lower()
        if media in (JSON, b""):
            return self.check(self._from_json(body))
        if media == NPY:
            return self.check(from_npy(body))
        if media == CSV:
            return self.check(self._from_csv(body))
        named = media.decode("latin-1")
        if body.lstrip()[:1] in (b"{", b"["):
            raise UnsupportedMediaType(
                f"The body looks like JSON but was sent as Content-Type {named}; "
                'send Content-Type: application/json with {"inputs": [...]}.'
            )
        raise UnsupportedMediaType(f"Content-Type {named} is not supported; send {_SUPPORTED}.")

    def _from_csv(self, body: bytes) -> np.ndarray:
        """Rows of comma-separated numbers, each reshaped to one example of the signature."""
        if not body.strip():
            raise self._refuse("an empty batch")
        kind = "f8" if self.dtype.kind == "f" else "i8"
        try:
            rows = np.loadtxt(io.BytesIO(body), delimiter=",", dtype=kind, ndmin=2)
        except ValueError as exc:
            raise InvalidInput(
                f"The CSV body must be numbers only, one example per line and no header: {exc}"
            ) from None
        if self.ndim == 2 or rows.shape[0] == 0:
            return rows
        if self.example is None or rows.shape[1] != math.prod(self.example):
            raise self._refuse(f"CSV rows of {rows.shape[1]} values")
        return rows.reshape(-1, *self.example)

    def _from_json(self, body: bytes) -> np.ndarray:
        try:
            doc = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            raise InvalidInput(f"The body is not valid JSON: {exc}.") from None
        if isinstance(doc, dict):
            value = doc.get("inputs", doc.get("instances"))
            if value is None:
                raise InvalidInput(
                    'The JSON body needs "inputs" (or "instances"): '
                    f'{{"inputs": {self.spec.describe()} as nested lists}}.'
                )
        else:
            value = doc
        if not isinstance(value, list):
            raise self._refuse(f"a JSON {type(value).__name__}, not nested lists")
        try:
            return np.asarray(value)
        except ValueError:  # ragged lists
            raise self._refuse("nested lists of uneven lengths") from None

    def encode(self, outputs: np.ndarray, npy: bool) -> tuple[bytes, bytes]:
        """(body, content type) of the predictions for one request."""
        if npy:
            buffer = io.BytesIO()
            np.save(buffer, outputs, allow_pickle=False)
            return buffer.getvalue(), NPY
        doc: dict[str, object] = {"predictions": outputs}
        classes = self.classes
        if classes is not None and outputs.ndim == 2 and outputs.shape[1] == len(classes):
            doc["labels"] = [classes[i] for i in outputs.argmax(1).tolist()]
        return orjson.dumps(doc, option=orjson.OPT_SERIALIZE_NUMPY), JSON


def from_npy(body: bytes) -> np.ndarray:
    """The array in ``numpy.save`` bytes, its header checked against its length first."""
    stream = io.BytesIO(body)
    try:
        version = npy_format.read_magic(stream)
        if version == (1, 0):
            shape, fortran, dtype = npy_format.read_array_header_1_0(stream)
        elif version == (2, 0):
            shape, fortran, dtype = npy_format.read_array_header_2_0(stream)
        else:
            raise ValueError(f"version {version} is not supported; numpy.save writes 1.0")
    except ValueError as exc:
        raise InvalidInput(f"The body is not a readable .npy array: {exc}.") from None
    if dtype.hasobject:
        raise InvalidInput("The .npy body holds Python objects; send a numeric array.")
    count = math.prod(shape)
    offset = stream.tell()
    if len(body) - offset != count * dtype.itemsize:
        raise InvalidInput(
            f"The .npy header says {dtype}{list(shape)} ({count * dtype.itemsize} bytes) but "
            f"the body carries {len(body) - offset} bytes of data."
        )
    array = np.frombuffer(body, dtype=dtype, count=count, offset=offset)
    return array.reshape(shape, order="F" if fortran else "C")
