"""SageMaker models without a server: the toolkit's handler chain, its default wire format,
what a SageMaker archive registers as, and the batcher's rules for their requests."""

import asyncio
import contextlib
import io
import json
import re
import tarfile
import textwrap
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from pydantic import ValidationError

from naiad.core.errors import InvalidInput, PayloadTooLarge
from naiad.schemas.models import ModelManifest, Signature, TensorSpec
from naiad.services.model_files import infer_manifest, infer_sagemaker_manifest, sagemaker_script
from naiad.serving import sagemaker_codec as wire
from naiad.serving.batcher import Batcher
from naiad.serving.codec import UnsupportedMediaType
from naiad.serving.handler import Handler, HandlerError, load_handler, make_request
from naiad.serving.loader import ModelLoadError, load_model

SCRIPT = ModelManifest(format="sagemaker", file="code/inference.py", signature=None)


class Double(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * 2


def model_dir(
    tmp_path: Path, script: str | None = None, files: dict[str, str] | None = None
) -> Path:
    """A SageMaker model directory: model.pt (TorchScript x*2), code/inference.py, others."""
    torch.jit.script(Double()).save(str(tmp_path / "model.pt"))
    if script is not None:
        (tmp_path / "code").mkdir()
        (tmp_path / "code" / "inference.py").write_text(textwrap.dedent(script))
    for name, text in (files or {}).items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    return tmp_path


def npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return buffer.getvalue()


def call(handler: Handler, body: bytes, content_type: str = "", accept: str = "", **headers: str):
    return handler.invoke(make_request(body, content_type, accept, headers))


# -- the default wire format ------------------------------------------------------------------
def test_decode_json_csv_and_npy_like_the_toolkit() -> None:
    for body in (
        b"[[1, 2], [3, 4]]",
        b'{"inputs": [[1, 2], [3, 4]]}',
        b'{"instances": [[1,2],[3,4]]}',
    ):
        got = wire.decode(body, "application/json")
        assert got.dtype == np.float32 and got.tolist() == [[1, 2], [3, 4]]
    assert wire.decode("[1.5, 2]", "").tolist() == [1.5, 2.0]  # no Content-Type: JSON, str body
    assert wire.decode(b"1,2\n3,4\n", "text/csv; charset=utf-8").shape == (2, 2)
    assert wire.decode("5,6", "text/csv").tolist() == [[5.0, 6.0]]  # one row per line
    ints = wire.decode(npy(np.arange(4, dtype=np.int64).reshape(2, 2)), "application/x-npy")
    assert ints.dtype == np.int64 and ints.flags.writeable


@pytest.mark.parametrize(
    ("body", "content_type", "error", "words"),
    [
        (b"[1, 2", "application/json", InvalidInput, "not valid JSON"),
        (b'{"x": [1]}', "application/json", InvalidInput, '"inputs" (or "instances")'),
        (b'["a", "b"]', "application/json", InvalidInput, "numbers only"),
        (b"[[1, 2], [3]]", "application/json", InvalidInput, "uneven lengths"),
        (b"a,b\n1,2", "text/csv", InvalidInput, "no header"),
        (b"", "text/csv", InvalidInput, "empty"),
        (b"not npy", "application/x-npy", InvalidInput, "not a readable .npy"),
        (b"<a/>", "application/xml", UnsupportedMediaType, "Content-Type application/xml"),
        (b"[[1], [2], [3]]", "application/json", PayloadTooLarge, "at most 2 per request"),
    ],
)
def test_decode_refusals_are_4xx_sentences(
    body: bytes, content_type: str, error: type[Exception], words: str
) -> None:
    with pytest.raises(error, match=re.escape(words)) as caught:
        wire.decode(body, content_type, max_rows=2)
    assert 400 <= caught.value.status_code < 500  # type: ignore[attr-defined]


def test_accept_picks_the_first_type_the_default_output_can_write() -> None:
    assert wire.negotiate("") == wire.negotiate("*/*") == wire.JSON
    assert wire.negotiate("text/html, text/csv;q=0.9, application/json") == wire.CSV
    assert wire.negotiate("Application/X-NPY") == wire.NPY
    with pytest.raises(wire.NotAcceptable, match="Accept: text/html asks") as caught:
        wire.negotiate("text/html")
    assert caught.value.status_code == 406


def test_encode_json_csv_npy() -> None:
    rows = np.array([[1.5, 2.0], [3.0, 4.0]], dtype=np.float32)
    assert json.loads(wire.encode(rows, wire.JSON)) == [[1.5, 2.0], [3.0, 4.0]]
    assert wire.encode(rows, wire.CSV) == b"1.5,2.0\n3.0,4.0\n"
    assert wire.encode(np.array([1, 2]), wire.CSV) == b"1\n2\n"  # 1-D: one value per line
    assert wire.encode(np.ones((1, 2, 2), np.int64), wire.CSV) == b"1,1,1,1\n"  # flattened
    back = np.load(io.BytesIO(wire.encode(rows, wire.NPY)), allow_pickle=False)
    assert back.dtype == np.float32 and back.tolist() == rows.tolist()
    with pytest.raises(TypeError):
        wire.encode(np.array(["a"]), wire.CSV)


# -- the handler chain ------------------------------------------------------------------------
def test_default_handlers_load_model_pt_and_answer_by_accept(tmp_path: Path) -> None:
    handler = load_handler(
        model_dir(tmp_path), ModelManifest(format="sagemaker", file="model.pt", signature=None)
    )
    assert handler.batchable and handler.script is None
    assert call(handler, b"[[1, 2]]") == (b"[[2.0,4.0]]", "application/json")
    assert call(handler, b"1,2\n3,4", "text/csv", "text/csv") == (b"2.0,4.0\n6.0,8.0\n", "text/csv")
    body, media = call(
        handler, npy(np.ones((1, 3), np.float32)), "application/x-npy", "application/x-npy"
    )
    assert media == wire.NPY and np.load(io.BytesIO(body)).tolist() == [[2.0, 2.0, 2.0]]
    with pytest.raises(wire.NotAcceptable):
        call(handler, b"[1]", accept="image/png")
    with pytest.raises(UnsupportedMediaType):
        call(handler, b"x", "text/plain")
    # The batched path: numpy rows in, numpy rows out, on the model as the chain sees it.
    assert handler.infer(np.ones((2, 2), np.float32)).tolist() == [[2, 2], [2, 2]]


def test_a_script_with_only_model_fn_keeps_the_batcher(tmp_path: Path) -> None:
    script = """
        import os, torch

        def model_fn(model_dir):
            return torch.jit.load(os.path.join(model_dir, "model.pt"))
    """
    handler = load_handler(model_dir(tmp_path, script), SCRIPT)
    assert handler.batchable and handler.describe == "code/inference.py (model_fn)"
    assert call(handler, b"[3]") == (b"[6.0]", "application/json")


def test_custom_input_and_output_fn_see_text_bodies_and_choose_the_content_type(
    tmp_path: Path,
) -> None:
    script = """
        import json

        import numpy as np
        import torch
        from helpers import SCALE  # a module beside the script: code/ is on sys.path

        def input_fn(request_body, request_content_type):
            if request_content_type == "application/json":
                assert isinstance(request_body, str)
                return torch.tensor(json.loads(request_body)["x"]) * SCALE
            if request_content_type == "text/csv":
                assert isinstance(request_body, str)
                return torch.tensor([float(v) for v in request_body.split(",")])
            if request_content_type == "application/x-npy":
                return torch.from_numpy(np.load(__import__("io").BytesIO(request_body)))
            raise ValueError(f"cannot read {request_content_type}")

        def output_fn(prediction, accept):
            if accept == "text/plain":
                return " ".join(str(v) for v in prediction.tolist())
            return json.dumps({"y": prediction.tolist()}).encode(), "application/vnd.y+json"
    """
    handler = load_handler(
        model_dir(tmp_path, script, {"code/helpers.py": "SCALE = 10\n"}),
        SCRIPT,
    )
    assert not handler.batchable
    assert call(handler, b'{"x": [1.0, 2.0]}', "application/json") == (
        b'{"y": [20.0, 40.0]}',
        "application/vnd.y+json",
    )
    assert call(handler, b"1,2", "text/csv", "text/plain") == (b"2.0 4.0", "text/plain")
    body, _ = call(handler, npy(np.array([1.0, 3.0], np.float32)), "application/x-npy")
    assert json.loads(body) == {"y": [2.0, 6.0]}
    with pytest.raises(HandlerError) as caught:
        call(handler, b"<x/>", "application/xml")
    assert caught.value.status_code == 500
    assert caught.value.message == "input_fn failed: ValueError: cannot read application/xml."


def test_transform_fn_replaces_the_chain_and_context_carries_custom_attributes(
    tmp_path: Path,
) -> None:
    script = """
        def transform_fn(model, request_body, content_type, accept, context):
            attributes = context.custom_attributes or "none"
            return {"attributes": attributes, "accept": accept, "type": content_type}
    """
    handler = load_handler(model_dir(tmp_path, script), SCRIPT)
    body, media = call(handler, b"{}", **{"x-amzn-sagemaker-custom-attributes": "trace=1"})
    # A dict is written as JSON; no Accept means application/json, and so does */*.
    assert json.loads(body) == {
        "attributes": "trace=1",
        "accept": "application/json",
        "type": "application/json",
    }
    assert media == "application/json"
    assert json.loads(call(handler, b"{}", accept="*/*")[0])["attributes"] == "none"


def test_request_failures_are_sentences_with_the_status_an_error_carries(tmp_path: Path) -> None:
    script = """
        class Unprocessable(Exception):
            status_code = 422

        def predict_fn(data, model):
            if data.sum() < 0:
                raise Unprocessable("negative inputs are out of range")
            raise RuntimeError("the GPU caught fire\\nTraceback (most recent call last): ...")
    """
    handler = load_handler(model_dir(tmp_path, script), SCRIPT)
    with pytest.raises(HandlerError) as caught:
        call(handler, b"[-1]")
    assert caught.value.status_code == 422
    assert (
        caught.value.message
        == "predict_fn failed: Unprocessable: negative inputs are out of range."
    )
    with pytest.raises(HandlerError) as caught:
        call(handler, b"[1]")
    assert caught.value.status_code == 500
    assert "Traceback" not in caught.value.message
    with pytest.raises(InvalidInput, match="UTF-8"):
        call(handler, b"\xff\xfe", "application/json")


@pytest.mark.parametrize(
    ("script", "extra", "words"),
    [
        (
            "def model_fn(model_dir):\n    raise FileNotFoundError('weights.bin is missing')\n",
            {},
            "model_fn in code/inference.py failed: FileNotFoundError: weights.bin is missing.",
        ),
        (
            "import not_installed_anywhere\n",
            {"code/requirements.txt": "not_installed_anywhere==1.0\n"},
            "code/inference.py failed to import: ModuleNotFoundError: No module named "
            "'not_installed_anywhere'; code/requirements.txt is not installed by Naiad",
        ),
        (
            "def transform_fn(m, b, c, a):\n    pass\n\ndef input_fn(b, c):\n    pass\n",
            {},
            "defines transform_fn and also input_fn",
        ),
    ],
)
def test_load_failures_are_one_sentence(
    tmp_path: Path, script: str, extra: dict[str, str], words: str
) -> None:
    with pytest.raises(ModelLoadError) as caught:
        load_handler(model_dir(tmp_path, script, extra), SCRIPT)
    message = caught.value.message
    assert words in message and "\n" not in message and message.endswith(".")


def test_no_model_to_load_and_no_model_fn_says_so(tmp_path: Path) -> None:
    directory = model_dir(tmp_path, "def input_fn(body, content_type):\n    return body\n")
    (directory / "model.pt").unlink()
    with pytest.raises(ModelLoadError) as caught:
        load_handler(directory, SCRIPT)
    assert caught.value.message == (
        f"There is nothing to load in {directory}: it has no model.pt or other .pt/.pth file, "
        "and code/inference.py defines no model_fn(model_dir) to load the model another way."
    )
    torch.save({"w": torch.ones(1)}, directory / "weights.pth")  # found, but a pickle
    with pytest.raises(ModelLoadError, match=r"weights\.pth is not a TorchScript file .* model_fn"):
        load_handler(directory, SCRIPT)


def test_a_named_script_that_is_not_there_means_the_default_handlers(tmp_path: Path) -> None:
    serve = ModelManifest(format="sagemaker", file="code/serve.py", signature=None)
    handler = load_handler(model_dir(tmp_path), serve)  # as the toolkit without the module
    assert (
        handler.batchable
        and handler.describe == "the default handlers (code/serve.py is not there)"
    )
    assert call(handler, b"[1]") == (b"[2.0]", "application/json")
    (tmp_path / "model.pt").rename(tmp_path / "a.pt")
    torch.jit.script(Double()).save(str(tmp_path / "b.pth"))
    with pytest.raises(ModelLoadError) as caught:
        load_handler(tmp_path, serve)
    assert caught.value.message == (
        f"{tmp_path} has several model files (a.pt, b.pth) and no model.pt, and there is no "
        "code/serve.py defining model_fn(model_dir) to choose; name the one to serve model.pt, "
        "or define model_fn."
    )


def test_evaluation_and_quantization_refuse_a_sagemaker_directory(tmp_path: Path) -> None:
    (tmp_path / "naiad-model.json").write_text(SCRIPT.model_dump_json())
    with pytest.raises(ModelLoadError, match="holds a SageMaker model"):
        load_model(tmp_path)


# -- the manifest and what an archive registers as ----------------------------------------------
def test_only_the_sagemaker_format_may_leave_out_the_signature() -> None:
    assert ModelManifest.model_validate({"format": "sagemaker", "file": "m.pt"}).signature is None
    for body in (
        {"format": "torchscript", "file": "m.pt"},
        {"format": "torchscript", "file": "m.pt", "signature": None},
    ):
        with pytest.raises(ValidationError) as caught:
            ModelManifest.model_validate(body)
        assert [(e["loc"], e["msg"]) for e in caught.value.errors()] == [
            (("signature",), "Field required")
        ]
    spec = Signature(inputs=TensorSpec(shape=[-1, 4]))
    kept = ModelManifest(format="sagemaker", file="code/inference.py", signature=spec)
    assert kept.signature == spec


Members = dict[str, tarfile.TarInfo]


@contextlib.contextmanager
def archive(files: dict[str, bytes]) -> Iterator[tuple[tarfile.TarFile, Members]]:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    buffer.seek(0)
    with tarfile.open(fileobj=buffer, mode="r:gz") as tar:
        yield tar, {m.name: m for m in tar.getmembers()}


def scripted() -> bytes:
    buffer = io.BytesIO()
    torch.jit.save(torch.jit.script(Double()), buffer)
    return buffer.getvalue()


def test_archives_with_an_inference_script_register_as_sagemaker() -> None:
    pickled = io.BytesIO()
    torch.save({"w": torch.ones(1)}, pickled)  # the script's model_fn loads whatever it likes
    files = {"model.pth": pickled.getvalue(), "code/inference.py": b"", "code/serve.py": b""}
    with archive(files) as (tar, members):
        for job in ("train-1", None):  # a job's model.tar.gz, or an uploaded one
            manifest = infer_manifest(tar, members, "m", job, None, None, ["a", "b"])
            assert (manifest.format, manifest.file, manifest.signature) == (
                "sagemaker",
                "code/inference.py",
                None,
            )
            assert manifest.classes == ["a", "b"]
        served = infer_manifest(tar, members, "m", None, None, None, None, program="serve")
        assert served.file == "code/serve.py"
    assert sagemaker_script(members, "serve.py") == "code/serve.py"
    assert sagemaker_script(members) == "code/inference.py"  # the server's own env is not read
    # As SageMaker's CreateModel gives it: the script may come beside the archive's files.
    with archive({"model.pt": b""}) as (tar, members_only):
        manifest = infer_sagemaker_manifest(tar, members_only, "serve")
    assert (manifest.format, manifest.file) == ("sagemaker", "code/serve.py")
    with pytest.raises(InvalidInput, match="must name a script in the model's code/ folder"):
        infer_sagemaker_manifest(tar, members_only, "../etc/passwd")
    assert sagemaker_script({"code/inference.py"}) == "code/inference.py"  # the fallback
    assert sagemaker_script({"inference.py", "model.pt"}) is None


def test_a_tensorflow_model_without_a_manifest_says_which_job_describes_it() -> None:
    for files in ({"model.keras": b"PK"}, {"1/saved_model.pb": b"", "1/variables/x": b""}):
        with archive(files) as (tar, members), pytest.raises(InvalidInput) as refused:
            infer_manifest(tar, members, "m", "train-1", None, None, None)
        assert "is a TensorFlow model" in str(refused.value)
        assert "framework='tensorflow'" in str(refused.value)


def test_a_lone_torchscript_file_is_sagemaker_when_uploaded_and_needs_a_shape_from_a_job() -> None:
    with archive({"model.pt": scripted()}) as (tar, members):
        uploaded = infer_manifest(tar, members, "m", None, None, None, None)
        assert (uploaded.format, uploaded.file) == ("sagemaker", "model.pt")
        shaped = infer_manifest(tar, members, "m", None, [-1, 4], None, None)
        assert shaped.format == "torchscript" and shaped.signature is not None
        with pytest.raises(InvalidInput, match="--job train-1 --input-shape"):
            infer_manifest(tar, members, "m", "train-1", None, None, None)
    with archive({"notes.txt": b"hello"}) as (tar, members), pytest.raises(InvalidInput) as caught:
        infer_manifest(tar, members, "m", None, None, None, None)
    assert caught.value.message.startswith("The model archive has no naiad-model.json")
    assert "code/inference.py" in caught.value.message


# -- the batcher's rules for requests of SageMaker models ---------------------------------------
def test_loose_rows_run_alone_batch_by_dtype_and_retry_a_mismatch_one_by_one() -> None:
    calls: list[tuple[tuple[int, ...], str]] = []

    def infer(batch: np.ndarray) -> np.ndarray:
        calls.append((batch.shape, batch.dtype.name))
        if batch.ndim == 2 and batch.shape[1] == 3:  # a model that sums each row... of threes
            return batch.sum(1) if batch.shape[0] == 1 else batch.sum(0)
        return batch * 2

    async def main() -> list[np.ndarray]:
        batcher = Batcher(infer, max_batch=8, max_delay=0.05, strict_rows=False)
        batcher.start()
        try:
            futures = [
                batcher.submit(np.ones((1, 2), np.float32)),
                batcher.submit(np.ones((2, 2), np.float32)),
                batcher.submit(np.ones((1, 2), np.int64)),
                batcher.submit(np.ones(4, np.float32), alone=True),
                batcher.submit(np.ones((1, 3), np.float32)),
                batcher.submit(np.ones((1, 3), np.float32)),
            ]
            return list(await asyncio.gather(*futures))
        finally:
            await batcher.close()

    results = asyncio.run(main())
    assert [r.shape for r in results] == [(1, 2), (2, 2), (1, 2), (4,), (1,), (1,)]
    assert results[3].tolist() == [2.0] * 4
    assert ((3, 2), "float32") in calls  # the two float rows of width 2 shared a call
    assert ((1, 2), "int64") in calls and ((4,), "float32") in calls
    # The threes were batched, came back as one row for two, and were run again alone.
    assert calls[-3:] == [((2, 3), "float32"), ((1, 3), "float32"), ((1, 3), "float32")]
