"""The search rebuilt from trial rows: each turn's study asks for new points, never a
point already asked, and a rebuilt study judges trials as one kept in memory would."""

from typing import Any

import pytest
from pydantic import ValidationError

from naiad.schemas.tuning import TuningJobCreate, TuningSpec
from naiad.services.search import Known, Search, importances

SPACE = [
    {"name": "lr", "type": "continuous", "min": 1e-4, "max": 1.0, "scaling": "log"},
    {"name": "width", "type": "integer", "min": 1, "max": 6},
    {"name": "act", "type": "categorical", "values": ["relu", "gelu", "tanh"]},
]


def _spec(**fields: Any) -> TuningSpec:
    body = {
        "name": "t",
        "template": {"command": ["python", "x.py"]},
        "space": SPACE,
        "objective": {"metric": "score"},
        **fields,
    }
    return TuningJobCreate.model_validate(body).spec()


def _score(params: dict[str, Any]) -> float:
    return -abs(float(params.get("lr", 0.01)) - 0.01) - abs(int(params.get("width", 3)) - 3)


def _run(spec: TuningSpec, trials: int) -> list[Known]:
    """A search run one trial per turn, each turn a fresh study built from the rows."""
    done: list[Known] = []
    for number in range(trials):
        params, attrs = Search("t", spec, done).ask()
        value = _score(params)
        steps = [[0, value / 2], [1, value]]
        done.append(Known(number, params, "complete", value, steps, attrs))
    return done


@pytest.mark.parametrize("strategy", ["tpe", "random", "cmaes"])
def test_each_turn_asks_a_new_point_in_the_space(strategy: str) -> None:
    trials = _run(_spec(strategy=strategy, seed=5, max_trials=12), 12)
    points = [tuple(sorted(t.params.items())) for t in trials]
    assert len(set(points)) == 12
    for t in trials:
        assert 1e-4 <= t.params["lr"] <= 1.0 and 1 <= t.params["width"] <= 6
        assert t.params["act"] in ("relu", "gelu", "tanh")
    # the same seed and rows give the same search: a restarted server asks what it would have
    assert [t.params for t in _run(_spec(strategy=strategy, seed=5, max_trials=12), 12)] == [
        t.params for t in trials
    ]


def test_a_grid_search_visits_every_point_once() -> None:
    grid = [{"name": "width", "type": "integer", "min": 1, "max": 3}, SPACE[2]]
    spec = _spec(strategy="grid", space=grid)
    assert spec.max_trials == 9
    trials = _run(spec, 9)
    assert sorted((t.params["width"], t.params["act"]) for t in trials) == sorted(
        (w, a) for w in (1, 2, 3) for a in ("relu", "gelu", "tanh")
    )


def test_running_trials_are_judged_against_finished_ones() -> None:
    spec = _spec(strategy="random", early_stopping="asha", seed=1)
    # ASHA sizes its rungs from the first completed trial, then judges each trial at the
    # turn its points arrive, still running in the study; the rungs it reached are kept
    # on its row when it completes.
    first = Known(
        0, {"lr": 0.01, "width": 3, "act": "gelu"}, "complete", 1.0, [[0, 0.5], [8, 1.0]], {}
    )
    params = {"lr": 0.02, "width": 3, "act": "gelu"}
    running = Known(1, params, "running", None, [[0, 0.8], [1, 0.8]], {})
    prune, attrs = Search("t", spec, [first, running]).should_prune(1)
    assert not prune and "completed_rung_0" in attrs
    second = Known(1, params, "complete", 0.9, running.intermediate, attrs)
    bad = Known(
        2, {"lr": 0.5, "width": 1, "act": "relu"}, "running", None, [[0, 0.1], [1, 0.1]], {}
    )
    assert Search("t", spec, [first, second, bad]).should_prune(2)[0]
    better = Known(2, bad.params, "running", None, [[0, 0.9], [1, 0.9]], {})
    assert not Search("t", spec, [first, second, better]).should_prune(2)[0]


def test_warm_start_seeds_the_study_with_points_that_fit() -> None:
    spec = _spec(seed=2)
    seeds = [
        Known(0, {"lr": 0.01, "width": 3, "act": "gelu"}, "complete", 1.0, [], {}),
        Known(1, {"lr": 5.0, "width": 3, "act": "gelu"}, "complete", 0.1, [], {}),  # out of range
        Known(2, {"lr": 0.1, "width": 2, "act": "relu"}, "failed", None, [], {}),
    ]
    search = Search("t", spec, [], seeds)
    assert len(search.study.trials) == 1
    assert search.study.best_value == 1.0
    params, _attrs = search.ask()
    assert set(params) == {"lr", "width", "act"}


def test_importances_need_three_completed_trials() -> None:
    spec = _spec(strategy="random", seed=3)
    trials = _run(spec, 8)
    assert importances(spec, trials[:2]) == {}
    shares = importances(spec, trials)
    assert set(shares) == {"lr", "width", "act"}
    assert sum(shares.values()) == pytest.approx(1.0)


@pytest.mark.parametrize(
    ("change", "says"),
    [
        ({"space": []}, "at least 1 item"),
        ({"space": [SPACE[0], SPACE[0]]}, "names 'lr' more than once"),
        (
            {"space": [{"name": "lr", "type": "continuous", "min": 0, "max": 1, "scaling": "log"}]},
            "min must be above 0",
        ),
        ({"space": [{"name": "n", "type": "integer", "min": 1.5, "max": 4}]}, "whole numbers"),
        ({"space": [{"name": "n", "type": "continuous", "min": 2, "max": 1}]}, "min must be below"),
        ({"space": [{"name": "n", "type": "continuous", "min": 1}]}, "needs both min and max"),
        ({"space": [{"name": "a", "type": "categorical", "values": ["x", "x"]}]}, "more than once"),
        ({"space": [{"name": "a", "type": "categorical", "min": 1, "max": 2}]}, "takes values"),
        ({"strategy": "grid"}, "'lr' is continuous"),
        ({"strategy": "bayes"}, "'tpe', 'random', 'grid' or 'cmaes'"),
        ({"objective": {"metric": "score", "regex": "no group"}}, "exactly one"),
        ({"objective": {"metric": "score", "direction": "up"}}, "'maximize' or 'minimize'"),
        ({"name": "Has_Caps"}, "lower-case letters"),
        ({"parallel": 0}, "greater than or equal to 1"),
    ],
)
def test_bad_searches_are_refused_with_a_sentence(change: dict[str, Any], says: str) -> None:
    body = {
        "name": "t",
        "template": {"command": ["python", "x.py"]},
        "space": SPACE,
        "objective": {"metric": "score"},
        **change,
    }
    with pytest.raises(ValidationError) as raised:
        TuningJobCreate.model_validate(body)
    assert says in str(raised.value)


def test_a_grid_budget_beyond_the_grid_is_refused() -> None:
    grid = [{"name": "width", "type": "integer", "min": 1, "max": 2}]
    with pytest.raises(ValidationError, match="the grid has 2 points"):
        _spec(strategy="grid", space=grid, max_trials=3)
