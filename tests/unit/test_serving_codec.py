"""The replica's wire format: JSON and .npy in, checked against the signature; answers out."""

import io

import numpy as np
import orjson
import pytest

from naiad.core.errors import InvalidInput, PayloadTooLarge
from naiad.schemas.models import ModelManifest, Signature, TensorSpec
from naiad.serving.codec import JSON, NPY, Codec, UnsupportedMediaType


def codec(shape: list[int], dtype: str = "float32", classes: list[str] | None = None) -> Codec:
    spec = TensorSpec(shape=shape, dtype=dtype)  # type: ignore[arg-type]
    return Codec(
        ModelManifest(
            format="torchscript", file="model.pt", signature=Signature(inputs=spec), classes=classes
        )
    )


DIGITS = codec([-1, 1, 8, 8])


def npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


def test_json_inputs_and_instances_decode_to_the_signature_dtype() -> None:
    x = np.arange(128, dtype=np.float64).reshape(2, 1, 8, 8) / 7
    for key in ("inputs", "instances"):
        got = DIGITS.decode(orjson.dumps({key: x.tolist()}), b"application/json")
        assert got.dtype == np.float32 and got.shape == (2, 1, 8, 8)
        np.testing.assert_allclose(got, x, rtol=1e-6)
    bare = DIGITS.decode(orjson.dumps(x.tolist()), b"application/json; charset=utf-8")
    assert bare.shape == (2, 1, 8, 8)


def test_a_missing_content_type_is_read_as_json() -> None:
    body = orjson.dumps({"inputs": np.zeros((1, 1, 8, 8)).tolist()})
    assert DIGITS.decode(body, b"").shape == (1, 1, 8, 8)


def test_one_example_without_the_batch_dimension_is_a_batch_of_one() -> None:
    one = np.ones((1, 8, 8)).tolist()
    assert DIGITS.decode(orjson.dumps({"inputs": one}), JSON).shape == (1, 1, 8, 8)
    assert DIGITS.decode(npy(np.ones((1, 8, 8), np.float32)), NPY).shape == (1, 1, 8, 8)


def test_npy_bodies_decode_without_pickle_and_are_writable() -> None:
    x = np.random.default_rng(0).random((3, 1, 8, 8)).astype(np.float32)
    got = DIGITS.decode(npy(x), b"application/x-npy")
    np.testing.assert_array_equal(got, x)
    assert got.flags.writeable  # torch.from_numpy warns on read-only memory
    fortran = DIGITS.decode(npy(np.asfortranarray(x)), NPY)
    np.testing.assert_array_equal(fortran, x)
    wider = DIGITS.decode(npy(x.astype(">f8")), NPY)  # big-endian float64 is cast
    assert wider.dtype == np.float32


def test_shape_errors_name_the_expected_signature() -> None:
    with pytest.raises(InvalidInput) as bad:
        DIGITS.decode(orjson.dumps({"inputs": np.zeros((3, 64)).tolist()}), JSON)
    assert bad.value.message == "inputs must be float32[N, 1, 8, 8]; got shape [3, 64]."
    with pytest.raises(InvalidInput, match=r"float32\[N, 1, 8, 8\]; got an empty batch"):
        DIGITS.decode(b'{"inputs": []}', JSON)
    with pytest.raises(InvalidInput, match="got an empty batch"):
        DIGITS.decode(npy(np.zeros((0, 1, 8, 8), np.float32)), NPY)
    with pytest.raises(InvalidInput, match="uneven lengths"):
        DIGITS.decode(b'{"inputs": [[1, 2], [3]]}', JSON)
    with pytest.raises(InvalidInput, match="got shape"):
        DIGITS.decode(npy(np.zeros((2, 8, 8), np.float32)), NPY)


def test_free_dimensions_take_any_size() -> None:
    sequences = codec([-1, -1, 4])
    assert sequences.decode(b'{"inputs": [[[1, 2, 3, 4]]]}', JSON).shape == (1, 1, 4)
    longer = orjson.dumps({"inputs": np.ones((2, 9, 4)).tolist()})
    assert sequences.decode(longer, JSON).shape == (2, 9, 4)
    with pytest.raises(InvalidInput, match=r"float32\[N, \*, 4\]; got shape \[1, 2, 3\]"):
        sequences.decode(orjson.dumps({"inputs": np.ones((1, 2, 3)).tolist()}), JSON)


def test_dtype_rules() -> None:
    # Integers into a float model: fine. Booleans, strings, nulls: refused.
    ints = orjson.dumps({"inputs": np.ones((1, 1, 8, 8), int).tolist()})
    assert DIGITS.decode(ints, JSON).dtype == np.float32
    for value in (True, "a", None):
        body = orjson.dumps({"inputs": [[[[value] * 8] * 8]]})
        with pytest.raises(InvalidInput, match=r"inputs must be float32\[N, 1, 8, 8\]; got "):
            DIGITS.decode(body, JSON)
    tokens = codec([-1, 3], "int64")
    assert tokens.decode(b'{"inputs": [[1, 2, 3]]}', JSON).dtype == np.int64
    with pytest.raises(InvalidInput, match=r"int64\[N, 3\]; got floats"):
        tokens.decode(b'{"inputs": [[1.5, 2, 3]]}', JSON)
    pixels = codec([-1, 2], "uint8")
    assert pixels.decode(b'{"inputs": [[0, 255]]}', JSON).dtype == np.uint8
    with pytest.raises(InvalidInput, match="outside uint8's range"):
        pixels.decode(b'{"inputs": [[0, 256]]}', JSON)
    half = codec([-1, 2], "bfloat16")  # numpy has no bfloat16: float32 on the wire
    assert half.decode(b'{"inputs": [[0.5, 1]]}', JSON).dtype == np.float32


def test_malformed_bodies_and_media_types_are_refused_with_a_sentence() -> None:
    with pytest.raises(InvalidInput, match="not valid JSON"):
        DIGITS.decode(b'{"inputs": [1, 2', JSON)
    with pytest.raises(InvalidInput, match='needs "inputs"'):
        DIGITS.decode(b'{"data": [1]}', JSON)
    with pytest.raises(InvalidInput, match=r"not a readable \.npy"):
        DIGITS.decode(b"\x93NUMPY garbage", NPY)
    with pytest.raises(InvalidInput, match="Python objects"):
        DIGITS.decode(_object_npy(), NPY)
    truncated = npy(np.zeros((4, 1, 8, 8), np.float32))[:-10]
    with pytest.raises(InvalidInput, match="bytes of data"):
        DIGITS.decode(truncated, NPY)
    with pytest.raises(UnsupportedMediaType) as unsupported:
        DIGITS.decode(b"1,2,3", b"text/plain")
    assert unsupported.value.status_code == 415
    assert "application/json" in unsupported.value.message
    assert "text/csv" in unsupported.value.message


def test_json_sent_as_text_plain_is_told_to_send_the_json_content_type() -> None:
    for body in (b'{"inputs": [[1, 2, 3]]}', b"  [[1, 2, 3]]"):
        with pytest.raises(UnsupportedMediaType, match="send Content-Type: application/json"):
            codec([-1, 3]).decode(body, b"text/plain; charset=utf-8")


def test_csv_rows_are_examples_reshaped_to_the_signature() -> None:
    x = np.arange(2 * 64, dtype=np.float32).reshape(2, 1, 8, 8)
    rows = "\n".join(",".join(str(int(v)) for v in example.ravel()) for example in x)
    decoded = DIGITS.decode(rows.encode(), b"text/csv")
    assert decoded.dtype == np.float32 and decoded.shape == (2, 1, 8, 8)
    np.testing.assert_array_equal(decoded, x)
    table = codec([-1, 3]).decode(b"1,2,3\n4.5,5,6\n", b"text/csv; header=absent")
    np.testing.assert_array_equal(table, [[1, 2, 3], [4.5, 5, 6]])
    assert codec([-1, 2], "int64").decode(b"1,2", b"text/csv").tolist() == [[1, 2]]
    with pytest.raises(InvalidInput, match="no header"):
        codec([-1, 2]).decode(b"a,b\n1,2\n", b"text/csv")
    with pytest.raises(InvalidInput, match="CSV rows of 3 values"):
        DIGITS.decode(b"1,2,3", b"text/csv")
    with pytest.raises(InvalidInput, match="an empty batch"):
        DIGITS.decode(b"\n", b"text/csv")
    with pytest.raises(InvalidInput, match="no header"):
        codec([-1, 2], "int64").decode(b"1.5,2", b"text/csv")


def test_a_request_over_the_row_limit_is_413_saying_how_to_split() -> None:
    spec = TensorSpec(shape=[-1, 2], dtype="float32")
    manifest = ModelManifest(format="torchscript", file="m.pt", signature=Signature(inputs=spec))
    small = Codec(manifest, max_rows=3)
    assert small.decode(b'{"inputs": [[1, 2], [3, 4], [5, 6]]}', JSON).shape == (3, 2)
    for body, media in (
        (b'{"inputs": [[1, 2], [3, 4], [5, 6], [7, 8]]}', JSON),
        (npy(np.zeros((4, 2), np.float32)), NPY),
        (b"1,2\n3,4\n5,6\n7,8\n", b"text/csv"),
    ):
        with pytest.raises(PayloadTooLarge) as refused:
            small.decode(body, media)
        assert refused.value.status_code == 413
        assert refused.value.message == (
            "This request holds 4 rows; this replica takes at most 3 per request. Split it "
            "into requests of 3 rows or fewer: sent together, they are batched just the same."
        )
    assert Codec(manifest).max_rows == 10_000


def _object_npy() -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    return buffer.getvalue()


def test_json_answers_carry_labels_when_the_manifest_names_classes() -> None:
    labelled = codec([-1, 3], classes=["cat", "dog"])
    outputs = np.array([[0.1, 0.9], [0.8, 0.2]], np.float32)
    body, media = labelled.encode(outputs, npy=False)
    assert media == JSON
    assert orjson.loads(body) == {
        "predictions": [[pytest.approx(0.1), pytest.approx(0.9)], [0.8, pytest.approx(0.2)]],
        "labels": ["dog", "cat"],
    }
    plain, _ = DIGITS.encode(outputs, npy=False)
    assert "labels" not in orjson.loads(plain)


def test_npy_answers_round_trip_exactly() -> None:
    outputs = np.random.default_rng(0).random((2, 10)).astype(np.float32)
    body, media = DIGITS.encode(outputs, npy=True)
    assert media == NPY
    np.testing.assert_array_equal(np.load(io.BytesIO(body), allow_pickle=False), outputs)
