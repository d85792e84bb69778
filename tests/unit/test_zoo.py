"""The zoo's networks have torchvision's state_dict layout; the loader and the fine-tuning
helpers do what they say. Nothing is downloaded: the URL tests use loopback only."""

import functools
import http.server
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import save_file
from torch import nn

from naiad.core.errors import InvalidInput
from naiad.models import finetune, zoo

# --- the layout torchvision publishes, written from its architecture rules -----------


def _conv_bn(prefix: str, conv: str, bn: str, cin: int, cout: int, k: int) -> dict:
    return {
        f"{prefix}{conv}.weight": (cout, cin, k, k),
        f"{prefix}{bn}.weight": (cout,),
        f"{prefix}{bn}.bias": (cout,),
        f"{prefix}{bn}.running_mean": (cout,),
        f"{prefix}{bn}.running_var": (cout,),
        f"{prefix}{bn}.num_batches_tracked": (),
    }


def torchvision_resnet(blocks: list[int], bottleneck: bool, classes: int) -> dict:
    """resnet.py: conv1/bn1, layer1..4 of BasicBlock or Bottleneck, downsample.0/.1, fc."""
    expansion = 4 if bottleneck else 1
    keys = _conv_bn("", "conv1", "bn1", 3, 64, 7)
    inplanes = 64
    for stage, (planes, count) in enumerate(zip((64, 128, 256, 512), blocks, strict=True)):
        for b in range(count):
            p = f"layer{stage + 1}.{b}."
            if bottleneck:
                keys |= _conv_bn(p, "conv1", "bn1", inplanes, planes, 1)
                keys |= _conv_bn(p, "conv2", "bn2", planes, planes, 3)
                keys |= _conv_bn(p, "conv3", "bn3", planes, planes * 4, 1)
            else:
                keys |= _conv_bn(p, "conv1", "bn1", inplanes, planes, 3)
                keys |= _conv_bn(p, "conv2", "bn2", planes, planes, 3)
            stride = 2 if stage > 0 and b == 0 else 1
            if stride != 1 or inplanes != planes * expansion:
                keys |= _conv_bn(p, "downsample.0", "downsample.1", inplanes, planes * expansion, 1)
            inplanes = planes * expansion
    keys["fc.weight"] = (classes, 512 * expansion)
    keys["fc.bias"] = (classes,)
    return keys


def torchvision_vgg(cfg: str, classes: int) -> dict:
    """vgg.py, batch_norm=False: each conv takes two indices (conv, ReLU), each M one."""
    keys: dict = {}
    index, cin = 0, 3
    for item in cfg.split():
        if item == "M":
            index += 1
            continue
        keys[f"features.{index}.weight"] = (int(item), cin, 3, 3)
        keys[f"features.{index}.bias"] = (int(item),)
        index, cin = index + 2, int(item)
    for i, (fin, fout) in zip(
        (0, 3, 6), ((25088, 4096), (4096, 4096), (4096, classes)), strict=True
    ):
        keys[f"classifier.{i}.weight"] = (fout, fin)
        keys[f"classifier.{i}.bias"] = (fout,)
    return keys


CFG_A = "64 M 128 M 256 256 M 512 512 M 512 512 M"
CFG_D = "64 64 M 128 128 M 256 256 256 M 512 512 512 M 512 512 512 M"
EXPECTED = {
    "resnet18": lambda n: torchvision_resnet([2, 2, 2, 2], False, n),
    "resnet34": lambda n: torchvision_resnet([3, 4, 6, 3], False, n),
    "resnet50": lambda n: torchvision_resnet([3, 4, 6, 3], True, n),
    "vgg11": lambda n: torchvision_vgg(CFG_A, n),
    "vgg16": lambda n: torchvision_vgg(CFG_D, n),
}


def on_meta(name: str, num_classes: int = 1000) -> torch.nn.Module:
    with torch.device("meta"):  # shapes without memory or init time
        return zoo.create(name, num_classes)


def test_the_fixture_matches_torchvision_published_counts() -> None:
    counts = {"resnet18": 122, "resnet34": 218, "resnet50": 320, "vgg11": 22, "vgg16": 32}
    assert {name: len(EXPECTED[name](1000)) for name in counts} == counts
    assert list(torchvision_vgg(CFG_A, 10))[:4] == [
        "features.0.weight",
        "features.0.bias",
        "features.3.weight",
        "features.3.bias",
    ]
    assert "features.28.weight" in torchvision_vgg(CFG_D, 10)


@pytest.mark.parametrize("name", list(EXPECTED))
@pytest.mark.parametrize("num_classes", [1000, 7])
def test_state_dict_keys_and_shapes_are_torchvisions(name: str, num_classes: int) -> None:
    got = {k: tuple(v.shape) for k, v in on_meta(name, num_classes).state_dict().items()}
    assert got == EXPECTED[name](num_classes)
    assert list(got) == list(EXPECTED[name](num_classes))  # the same order, too


TORCHVISION = json.loads((Path(__file__).parent / "data" / "torchvision_layout.json").read_text())


@pytest.mark.parametrize("name", list(EXPECTED))
def test_state_dict_is_the_one_torchvision_writes(name: str) -> None:
    """Against the layout torchvision 0.29.1 itself wrote (data/torchvision_layout.json):
    every key, every shape, in torchvision's order."""
    ours = [[k, list(v.shape)] for k, v in on_meta(name, 1000).state_dict().items()]
    assert ours == TORCHVISION["models"][name]


@pytest.mark.parametrize("name", list(EXPECTED))
def test_forward_shapes(name: str) -> None:
    if name.startswith("vgg"):
        out = on_meta(name, 5)(torch.empty(2, 3, 64, 64, device="meta"))
    else:
        out = zoo.create(name, 5).eval()(torch.rand(2, 3, 32, 32))
    assert tuple(out.shape) == (2, 5)


def test_create_refuses_an_unknown_name() -> None:
    with pytest.raises(InvalidInput, match="known ones are resnet18, resnet34"):
        zoo.create("resnet101")


# --- loading --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def trained() -> dict[str, torch.Tensor]:
    torch.manual_seed(1)
    return {k: v.clone() for k, v in zoo.create("resnet18", 4).state_dict().items()}


def same(model: torch.nn.Module, state: dict[str, torch.Tensor]) -> bool:
    return all(torch.equal(v, state[k]) for k, v in model.state_dict().items())


def test_loads_safetensors_and_returns_the_sha256(trained: dict, tmp_path: Path) -> None:
    path = tmp_path / "base.safetensors"
    save_file(trained, str(path))
    model = zoo.create("resnet18", 4)
    fingerprint = zoo.load_weights(model, path)
    assert same(model, trained)
    import hashlib

    assert fingerprint == hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize("wrap", ["bare", "state_dict", "model"])
def test_loads_pth_nested_and_with_the_ddp_prefix(trained: dict, tmp_path: Path, wrap: str) -> None:
    state = {f"module.{k}": v for k, v in trained.items()}
    path = tmp_path / "base.pth"
    torch.save(state if wrap == "bare" else {wrap: state, "epoch": 3}, path)
    model = zoo.create("resnet18", 4)
    zoo.load_weights(model, str(path))
    assert same(model, trained)


def test_a_mismatch_names_the_keys_and_what_to_do(trained: dict, tmp_path: Path) -> None:
    path = tmp_path / "base.safetensors"
    save_file({**trained, "extra.weight": torch.zeros(1)}, str(path))
    model: Any = zoo.create("resnet18", 10)
    with pytest.raises(InvalidInput) as err:
        zoo.load_weights(model, path)
    message = str(err.value)
    assert "unexpected 1 key(s): extra.weight" in message
    assert "fc.weight (4, 512) vs (10, 512)" in message
    assert "replace_head" in message and "strict=False" in message
    before = model.fc.weight.clone()
    zoo.load_weights(model, path, strict=False)  # the rest loads, the head stays
    assert torch.equal(model.fc.weight, before)
    assert torch.equal(model.conv1.weight, trained["conv1.weight"])
    save_file({"conv1.weight": trained["conv1.weight"]}, str(tmp_path / "short.safetensors"))
    with pytest.raises(InvalidInput, match=r"missing 121 key\(s\): bn1.weight, .* and 116 more"):
        zoo.load_weights(zoo.create("resnet18", 4), tmp_path / "short.safetensors")


def test_unknown_formats_and_missing_files_are_refused(tmp_path: Path) -> None:
    (tmp_path / "w.onnx").write_bytes(b"x")
    with pytest.raises(InvalidInput, match=r"known ones are \.safetensors, \.pth"):
        zoo.load_weights(zoo.create("resnet18"), tmp_path / "w.onnx")
    with pytest.raises(InvalidInput, match="No weights file at"):
        zoo.load_weights(zoo.create("resnet18"), tmp_path / "nope.pth")


def test_an_unreachable_url_says_so(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match=r"Could not reach https://127\.0\.0\.1:9/w\.pth"):
        zoo.load_weights(zoo.create("resnet18"), "https://127.0.0.1:9/w.pth", cache_dir=tmp_path)
    assert not list(tmp_path.iterdir())  # no partial file left behind


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, list[str]]]:
    """A loopback HTTP server over tmp_path/www, and the paths it was asked for."""
    root = tmp_path / "www"
    root.mkdir()
    asked: list[str] = []

    class Handler(http.server.SimpleHTTPRequestHandler):
        def do_GET(self) -> None:
            asked.append(self.path)
            super().do_GET()

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(Handler, directory=str(root))
    )
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", asked
    finally:
        server.shutdown()
        server.server_close()


def test_a_url_is_downloaded_once_then_read_from_the_cache(
    trained: dict, tmp_path: Path, served: tuple[str, list[str]]
) -> None:
    url, asked = served
    save_file(trained, str(tmp_path / "www" / "r18.safetensors"))
    cache = tmp_path / "cache"
    first = zoo.load_weights(zoo.create("resnet18", 4), f"{url}/r18.safetensors", cache_dir=cache)
    model = zoo.create("resnet18", 4)
    second = zoo.load_weights(model, f"{url}/r18.safetensors", cache_dir=cache)
    assert first == second and same(model, trained)
    assert asked == ["/r18.safetensors"]
    assert [p.name.endswith("-r18.safetensors") for p in cache.iterdir()] == [True]
    with pytest.raises(InvalidInput, match="HTTP 404"):
        zoo.load_weights(model, f"{url}/missing.pth", cache_dir=cache)


def test_the_cache_defaults_to_the_naiad_home(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("NAIAD_HOME", str(tmp_path))
    assert zoo._cache_root(None) == tmp_path / "cache" / "weights"


# --- fine-tuning helpers --------------------------------------------------------------


def test_replace_head() -> None:
    resnet = zoo.create("resnet18")
    head = finetune.replace_head(resnet, 3)
    assert resnet.fc is head and head.out_features == 3 and head.in_features == 512
    vgg = on_meta("vgg11")
    assert finetune.replace_head(vgg, 2).out_features == 2
    assert tuple(vgg.state_dict()["classifier.6.weight"].shape) == (2, 4096)
    with pytest.raises(InvalidInput, match="neither a ResNet"):
        finetune.replace_head(torch.nn.Linear(2, 2), 3)


def test_freeze_and_unfreeze_by_stage() -> None:
    model = zoo.create("resnet18", 3)
    assert finetune.freeze(model, upto="layer3") == ["stem", "layer1", "layer2", "layer3"]
    trainable = {k.split(".")[0] for k, p in model.named_parameters() if p.requires_grad}
    assert trainable == {"layer4", "fc"}
    finetune.unfreeze(model)
    assert all(p.requires_grad for p in model.parameters())
    with pytest.raises(InvalidInput, match="stages are stem, layer1"):
        finetune.freeze(model, upto="layer9")
    vgg = on_meta("vgg11")
    finetune.freeze(vgg, upto="features")
    assert {k.split(".")[0] for k, p in vgg.named_parameters() if p.requires_grad} == {"classifier"}


def test_param_groups_decay_towards_the_input() -> None:
    model = zoo.create("resnet18", 3)
    groups = finetune.param_groups(model, lr=0.1, decay=0.5)
    assert [g["name"] for g in groups] == ["stem", "layer1", "layer2", "layer3", "layer4", "head"]
    assert [g["lr"] for g in groups] == pytest.approx([0.1 * 0.5**k for k in range(5, -1, -1)])
    assert sum(len(g["params"]) for g in groups) == len(list(model.parameters()))
    finetune.freeze(model, upto="layer2")
    assert [g["name"] for g in finetune.param_groups(model, lr=0.1)] == [
        "layer3",
        "layer4",
        "head",
    ]
    torch.optim.SGD(finetune.param_groups(model, lr=0.1), momentum=0.9)  # torch accepts them


def test_record_base_logs_params_on_the_main_rank_only() -> None:
    class Run:
        def __init__(self) -> None:
            self.logged: dict = {}

        def log_params(self, params: dict) -> None:
            self.logged.update(params)

    class Ctx:
        def __init__(self, main: bool) -> None:
            self.is_main, self.run = main, Run()

        def tracking_run(self) -> Run:
            return self.run

    main, other = Ctx(True), Ctx(False)
    params = finetune.record_base(main, "ab" * 32, "base.safetensors")
    assert (
        main.run.logged == params == {"base_sha256": "ab" * 32, "base_source": "base.safetensors"}
    )
    finetune.record_base(other, "cd" * 32, "x")
    assert other.run.logged == {}


def test_an_s3_object_loads_through_boto3(
    trained: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import boto3
    from moto import mock_aws

    for name in ("NAIAD_S3_ENDPOINT_URL", "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    path = tmp_path / "base.pth"
    torch.save({"model": trained}, path)
    with mock_aws():  # in process: no network
        boto3.client("s3").create_bucket(Bucket="weights")
        boto3.client("s3").upload_file(str(path), "weights", "r18/base.pth")
        model = zoo.create("resnet18", 4)
        fingerprint = zoo.load_weights(model, "s3://weights/r18/base.pth", cache_dir=tmp_path / "c")
        assert same(model, trained) and fingerprint == zoo.fingerprint_file(path)
        with pytest.raises(InvalidInput, match=r"Could not read s3://weights/nope\.pth"):
            zoo.load_weights(model, "s3://weights/nope.pth", cache_dir=tmp_path / "c")
    with pytest.raises(InvalidInput, match="not an s3://bucket/key URI"):
        zoo.load_weights(model, "s3://weights", cache_dir=tmp_path / "c")


def test_the_s3_endpoint_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    import boto3

    seen: dict = {}

    def client(service: str, endpoint_url: str | None = None) -> object:
        seen.update(service=service, endpoint_url=endpoint_url)
        raise RuntimeError("stop here")

    monkeypatch.setattr(boto3, "client", client)
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:2")
    monkeypatch.setenv("NAIAD_S3_ENDPOINT_URL", "http://127.0.0.1:1")
    with pytest.raises(RuntimeError, match="stop here"):
        zoo.fetch_s3("s3://b/k.pth")
    assert seen == {"service": "s3", "endpoint_url": "http://127.0.0.1:1"}


def test_recalibrated_batchnorm_holds_the_new_datas_statistics() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.BatchNorm2d(3), nn.Conv2d(3, 2, 1))
    data = torch.randn(40, 3, 4, 4) * 3.0 + torch.tensor([5.0, -2.0, 0.5]).view(1, 3, 1, 1)
    model.eval()
    finetune.recalibrate_batchnorm(model, data.split(10))
    norm = model[0]
    assert isinstance(norm, nn.BatchNorm2d)
    torch.testing.assert_close(norm.running_mean, data.mean(dim=(0, 2, 3)), atol=1e-4, rtol=0)
    assert norm.momentum == 0.1  # put back for training to go on as before
    assert not model.training  # and the mode it was in
