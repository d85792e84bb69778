"""The compact forms of a search space and an objective (SDK and CLI share them), the spec
file, and a tuning job checked before anything is sent."""

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from naiad.cli.main import build_app
from naiad.core.errors import InvalidInput
from naiad.schemas.tuning import ParameterRange
from naiad.sdk.jobs import TrainingJobs
from naiad.sdk.tuning import (
    TuningJobs,
    default_name,
    parse_objective,
    parse_range,
    parse_space,
    read_spec,
    typed_value,
)


@pytest.mark.parametrize(
    ("text", "fields"),
    [
        ("lr=log:1e-4:1e-1", {"type": "continuous", "min": 1e-4, "max": 0.1, "scaling": "log"}),
        ("drop=float:0:0.5", {"type": "continuous", "min": 0, "max": 0.5, "scaling": "linear"}),
        ("layers=int:1:4", {"type": "integer", "min": 1, "max": 4, "scaling": "linear"}),
        ("width=logint:8:512", {"type": "integer", "min": 8, "max": 512, "scaling": "log"}),
        ("act=cat:relu,gelu", {"type": "categorical", "values": ["relu", "gelu"]}),
        ("batch=cat:16, 32,true", {"type": "categorical", "values": [16, 32, True]}),
        ("train:lr = LOG:1e-3:1", {"type": "continuous", "min": 1e-3, "max": 1, "scaling": "log"}),
    ],
)
def test_compact_ranges(text: str, fields: dict[str, Any]) -> None:
    parsed = parse_range(text, "--space")
    assert parsed.name == text.partition("=")[0].strip()
    assert parsed.model_dump(include=set(fields)) == fields


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("lr=log:0:1", "--space lr=log:0:1: a log-scaled range needs min > 0"),
        ("lr=logint:-1:8", "a log-scaled range needs min > 0"),
        ("lr", "--space lr: write NAME=SPEC, where SPEC is log:MIN:MAX"),
        ("=int:1:2", "write NAME=SPEC"),
        ("lr=", "the kind of range is missing; use log:MIN:MAX"),
        ("lr=exp:1:2", "'exp' is not a kind of range"),
        ("lr=log:1", "write log:MIN:MAX, e.g. lr=log:1:10"),
        ("lr=float:a:1", "min 'a' is not a finite number"),
        ("lr=float:0:inf", "max 'inf' is not a finite number"),
        ("n=int:1.5:3", "an integer range needs whole-number bounds (use float:1.5:3)"),
        ("x=float:2:1", "min (2) must be below max (1)"),
        ("x=log:1:1", "min (1) must be below max (1)"),
        ("act=cat:", "list the values after cat:"),
        ("act=cat:a,,b", "list the values after cat:"),
        ("act=cat:a,a", "a value is listed more than once"),
        ("a..b=int:1:2", "Hyperparameter name 'a..b' is not valid"),
    ],
)
def test_bad_compact_ranges_say_what_is_wrong(text: str, says: str) -> None:
    with pytest.raises(InvalidInput) as raised:
        parse_range(text, "--space")
    assert says in raised.value.message
    assert raised.value.message.startswith(f"--space {text}: ")
    assert raised.value.message.endswith(".")


def test_space_in_every_form() -> None:
    given = ParameterRange(name="a", type="integer", min=1, max=3)
    listed = parse_space(
        [given, "b=log:1e-3:1", {"name": "c", "type": "categorical", "values": ["x", "y"]}]
    )
    assert [r.name for r in listed] == ["a", "b", "c"] and listed[0] is given
    mapped = parse_space(
        {"lr": "log:1e-3:1", "act": ["relu", "gelu"], "n": {"type": "integer", "min": 1, "max": 3}}
    )
    assert [(r.name, r.type) for r in mapped] == [
        ("lr", "continuous"),
        ("act", "categorical"),
        ("n", "integer"),
    ]
    with pytest.raises(InvalidInput, match=r"space n=.*needs both min and max"):
        parse_space({"n": {"type": "integer", "min": 1}})
    with pytest.raises(InvalidInput, match="not one string"):
        parse_space("lr=log:1e-3:1")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("text", "metric", "direction"),
    [
        ("val_acc:max", "val_acc", "maximize"),
        ("loss:min", "loss", "minimize"),
        ("train:loss:MINIMIZE", "train:loss", "minimize"),
        ("score:maximize", "score", "maximize"),
    ],
)
def test_objectives(text: str, metric: str, direction: str) -> None:
    objective = parse_objective(text)
    assert (objective.metric, objective.direction, objective.regex) == (metric, direction, None)


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("score", "--objective score: say which way is better, METRIC:max or METRIC:min"),
        ("score:up", "(e.g. val_acc:max)"),
        (":max", "say which way is better"),
        ("a..b:max", "Objective metric 'a..b' is not valid"),
    ],
)
def test_bad_objectives(text: str, says: str) -> None:
    with pytest.raises(InvalidInput) as raised:
        parse_objective(text, option="--objective")
    assert says in raised.value.message


def test_objective_regex_and_mapping() -> None:
    read = parse_objective("loss:min", regex=r"loss=([0-9.]+)")
    assert read.regex == r"loss=([0-9.]+)"
    with pytest.raises(InvalidInput, match="2 capturing groups"):
        parse_objective("loss:min", regex=r"(\w+)=([0-9.]+)", option="--objective")
    assert parse_objective({"metric": "acc", "direction": "max"}).direction == "maximize"
    assert parse_objective(read, regex=r"l=([0-9.]+)").regex == r"l=([0-9.]+)"


def test_default_names_fit_the_rules() -> None:
    for script in ("objective.py", "My_Very_Long_Training_Script_Name_x.py", "__.py", "a/b.c.py"):
        name = default_name(script)
        assert len(name) <= 32 and name[0].isalnum() and name == name.lower()
        assert set(name) <= set("abcdefghijklmnopqrstuvwxyz0123456789-"), name
    assert default_name("objective.py").startswith("objective-")
    assert default_name("__.py").startswith("tune-")


def test_typed_values() -> None:
    assert [typed_value(v) for v in ("3", "0.5", "true", "relu", "nan")] == [
        3,
        0.5,
        True,
        "relu",
        "nan",
    ]


class NoServer:
    """A transport that fails the test if anything is sent."""

    def request(self, *args: object, **kwargs: object) -> None:
        raise AssertionError(f"sent {args}")


def _tuning() -> TuningJobs:
    transport: Any = NoServer()
    return TuningJobs(transport, TrainingJobs(transport))


@pytest.mark.parametrize(
    ("kwargs", "says"),
    [
        ({"strategy": "bayes"}, "strategy: Input should be 'tpe', 'random', 'grid' or 'cmaes'"),
        ({"strategy": "grid"}, "a grid search tries every value"),
        ({"parallel": 0}, "parallel: Input should be greater than or equal to 1"),
        ({"name": "Bad_Name"}, "tuning job name 'Bad_Name' is not valid"),
        ({"priority": 5000}, "template.priority"),
        ({"space": ["lr=log:0:1"]}, "space lr=log:0:1: a log-scaled range needs min > 0"),
        ({"objective": "score"}, "say which way is better"),
    ],
)
def test_create_is_checked_before_anything_is_sent(
    kwargs: dict[str, Any], says: str, tmp_path: Path
) -> None:
    args: dict[str, Any] = {
        "name": "t1",
        "script": "train.py",
        "source": tmp_path,
        "space": ["lr=log:1e-4:1e-1"],
        "objective": "score:max",
        **kwargs,
    }
    with pytest.raises(InvalidInput) as raised:
        _tuning().create(**args)
    assert says in raised.value.message


def test_spec_file_yaml_and_json(tmp_path: Path) -> None:
    (tmp_path / "spec").mkdir()
    yaml_spec = tmp_path / "spec" / "tune.yaml"
    yaml_spec.write_text(
        "script: train.py\nsource: code\nspace:\n  lr: log:1e-4:1e-1\n  act: [relu, gelu]\n"
        "objective: score:max\ntemplate:\n  inputs: {train: data, s3: 's3://b/k'}\n"
    )
    spec = read_spec(yaml_spec)
    assert spec["source"] == str(tmp_path / "spec" / "code")
    assert spec["template"]["inputs"] == {
        "train": str(tmp_path / "spec" / "data"),
        "s3": "s3://b/k",
    }
    assert [r.name for r in parse_space(spec["space"])] == ["lr", "act"]
    json_spec = tmp_path / "tune.json"
    json_spec.write_text(json.dumps({"script": "t.py", "space": ["n=int:1:3"], "parallel": 2}))
    assert read_spec(json_spec)["source"] == str(tmp_path / ".")
    bad = tmp_path / "bad.yaml"
    bad.write_text("script: t.py\nbudget: 3\n")
    with pytest.raises(InvalidInput, match="has 'budget', which a tuning spec does not take"):
        read_spec(bad)
    bad.write_text("- a\n- b\n")
    with pytest.raises(InvalidInput, match="must hold a mapping"):
        read_spec(bad)
    bad.write_text("script: [unclosed\n")
    with pytest.raises(InvalidInput, match="is not valid YAML or JSON"):
        read_spec(bad)


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--space", "lr=log:0:1", "--objective", "score:max"], "--space lr=log:0:1: a log-scaled"),
        (["--space", "lr=log:1e-3:1", "--objective", "score"], "--objective score: say which way"),
        (["--objective", "score:max"], "Give the search space: --space NAME=SPEC"),
        (["--space", "lr=log:1e-3:1"], "Give the objective: --objective METRIC:max"),
    ],
)
def test_cli_refuses_bad_strings_before_reaching_a_server(
    args: list[str], says: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NAIAD_URL", "http://127.0.0.1:9")  # nothing listens there
    monkeypatch.setenv("COLUMNS", "400")
    result = CliRunner().invoke(build_app(), ["tune", "objective.py", *args])
    assert result.exit_code == 1
    assert says in " ".join(result.output.split())
    assert "Traceback" not in result.output


def test_a_spec_file_is_create_s_arguments(tmp_path: Path) -> None:
    (tmp_path / "code").mkdir()
    (tmp_path / "code" / "train.py").write_text("print('hi')\n")
    spec = tmp_path / "tune.yaml"
    spec.write_text(
        "name: from-file\nscript: train.py\nsource: code\nspace: [lr=log:1e-4:1e-1]\n"
        "objective: {metric: loss, direction: min}\nstrategy: random\nmax_trials: 5\n"
        "template: {hyperparameters: {epochs: 2}, max_retries: 1}\n"
    )
    with pytest.raises(AssertionError, match="sent \\('PUT', '/sources'\\)"):
        _tuning().create(**read_spec(spec))  # checked, then the source is sent
