"""The inference toolkit's default wire format, for SageMaker models (no torch here).

Decoding (``input_fn``'s default, before the tensor is made):

* ``application/json`` (also when no Content-Type is sent): a bare array, or
  ``{"inputs": [...]}`` / ``{"instances": [...]}``; numbers become float32, as the
  toolkit's ``torch.FloatTensor`` makes them.
* ``text/csv``: one row per line, numbers only, no header; float32 rows.
* ``application/x-npy``: ``numpy.save`` bytes, never unpickled; the array's own dtype.

Encoding (``output_fn``'s default) follows Accept, in the order the client lists types:
``application/json`` (when Accept is missing or ``*/*`` too) answers the bare nested
list, ``text/csv`` one line per row (an example's values flattened, row-major),
``application/x-npy`` ``numpy.save`` bytes. An Accept none of these answers is a 406.
"""

import io
from typing import Any

import numpy as np
import orjson

from naiad.core.errors import InvalidInput, NaiadError, PayloadTooLarge
from naiad.serving.codec import UnsupportedMediaType, from_npy

JSON = "application/json"
CSV = "text/csv"
NPY = "application/x-npy"
ANSWERS = (JSON, CSV, NPY)
TEXT_TYPES = (JSON, CSV)  # bodies the toolkit hands to input_fn as str, not bytes
_ANY = ("*/*", "application/*")
_NUMBERS = "biuf"


class NotAcceptable(NaiadError):
    """The request's Accept names no type the default output_fn can produce."""

    status_code = 406
    code = "not_acceptable"


def media_type(header: str) -> str:
    """``application/json`` of ``Application/JSON; charset=utf-8``."""
    return header.split(";", 1)[0].strip().lower()


def negotiate(accept: str) -> str:
    """The first type of ``accept`` the default output_fn produces (JSON for none or ``*/*``)."""
    if not accept.strip():
        return JSON
    for part in accept.split(","):
        media = media_type(part)
        if media in ANSWERS:
            return media
        if media in _ANY:
            return JSON
    raise NotAcceptable(
        f"Accept: {accept} asks for a type this model cannot answer in; ask for "
        f"{', '.join(ANSWERS[:-1])} or {ANSWERS[-1]}, or define output_fn in its inference "
        "script."
    )


def _numbers(array: np.ndarray, what: str) -> np.ndarray:
    if array.dtype.kind not in _NUMBERS:
        raise InvalidInput(
            f"The {what} must hold numbers only; got "
            + (
                "strings, nulls or nested objects."
                if array.dtype.kind in "OUS"
                else f"{array.dtype}."
            )
        )
    return array


def decode(body: bytes | str, content_type: str, max_rows: int | None = None) -> np.ndarray:
    """The request as an array (float32 from JSON and CSV), or a 400/413/415 saying why."""
    media = media_type(content_type) or JSON
    if media == JSON:
        array = _from_json(body)
    elif media == CSV:
        array = _from_csv(body)
    elif media == NPY:
        if isinstance(body, str):
            raise InvalidInput("An application/x-npy body must be bytes, not text.")
        array = _numbers(from_npy(body), ".npy body")
        if not array.flags.writeable:  # a view of the request's bytes; torch wants to own it
            array = array.copy()
    else:
        raise UnsupportedMediaType(
            f"Content-Type {content_type} is not one this model decodes; send "
            f'{JSON} (an array, or {{"inputs": [...]}}), {CSV} (one row per line) or {NPY} '
            "(numpy.save bytes), or define input_fn in its inference script."
        )
    if max_rows is not None and array.ndim >= 2 and array.shape[0] > max_rows:
        raise PayloadTooLarge(
            f"This request holds {array.shape[0]} rows; this replica takes at most {max_rows} "
            "per request. Split it into smaller requests: sent together, they are batched "
            "just the same."
        )
    return array


def _from_json(body: bytes | str) -> np.ndarray:
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise InvalidInput(f"The body is not valid JSON: {exc}.") from None
    if isinstance(doc, dict):
        if "inputs" not in doc and "instances" not in doc:
            raise InvalidInput(
                'The JSON body must be an array, or an object with "inputs" (or "instances") '
                "holding one."
            )
        doc = doc["inputs"] if "inputs" in doc else doc["instances"]
    if not isinstance(doc, list | int | float):
        raise InvalidInput(
            f"The JSON body must hold an array of numbers, not a {type(doc).__name__}."
        )
    try:
        array = np.asarray(doc)
    except ValueError:  # ragged lists
        raise InvalidInput(
            "The JSON arrays have uneven lengths; every row must be as long."
        ) from None
    return _numbers(array, "JSON array").astype(np.float32)


def _from_csv(body: bytes | str) -> np.ndarray:
    text = body.encode() if isinstance(body, str) else body
    if not text.strip():
        raise InvalidInput("The CSV body is empty; send one row of numbers per line.")
    try:
        return np.loadtxt(io.BytesIO(text), delimiter=",", dtype=np.float32, ndmin=2)
    except ValueError as exc:
        raise InvalidInput(
            f"The CSV body must be numbers only, one row per line and no header: {exc}."
        ) from None


def plain(value: Any) -> Any:
    """orjson's fallback: tensors and odd arrays (non-contiguous, float16) as lists."""
    if hasattr(value, "tolist"):
        return value.tolist()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def _csv_row(row: np.ndarray) -> bytes:
    try:
        return orjson.dumps(row, option=orjson.OPT_SERIALIZE_NUMPY)[1:-1]
    except orjson.JSONEncodeError:  # a dtype orjson does not write
        return ",".join(map(str, row.tolist())).encode()


def encode(value: Any, media: str) -> bytes:
    """``value`` (an array, a tensor made plain by ``to_numpy``, or lists) as ``media``."""
    if media == JSON:
        return orjson.dumps(value, default=plain, option=orjson.OPT_SERIALIZE_NUMPY)
    array = np.asarray(value)
    if array.dtype.kind not in _NUMBERS:
        raise TypeError(f"a {array.dtype} prediction cannot be written as {media}")
    if media == NPY:
        buffer = io.BytesIO()
        np.save(buffer, array, allow_pickle=False)
        return buffer.getvalue()
    if array.dtype.kind == "b":
        array = array.astype(np.uint8)
    rows = array.reshape(-1, 1) if array.ndim < 2 else array.reshape(array.shape[0], -1)
    rows = np.ascontiguousarray(rows)
    return b"".join(_csv_row(row) + b"\n" for row in rows)
