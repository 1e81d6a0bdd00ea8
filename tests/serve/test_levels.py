"""Answers at the level a photo supports, through the app: a bundle whose export found that the Bolt Sedan's 2022
and 2023 cannot be told apart answers a photo of either with the model and its years, the years' shared and
differing specifications, in the API, the page and `carscope predict`'s rows.

    .venv/bin/python -m pytest -q tests/serve/test_levels.py
"""

from __future__ import annotations

import pytest

from tests.serve.test_app import upload
from tests.serve.tinybundle import EXPECTED, make_tiny_bundle, photo

GROUP = ["2022_bolt_sedan", "2023_bolt_sedan"]


@pytest.fixture(scope="module")
def grouped(tmp_path_factory):
    from carscope.serve.app import create_app

    root = make_tiny_bundle(tmp_path_factory.mktemp("levels") / "bundle", groups=[GROUP])
    app = create_app(root, {"providers": "cpu", "max_wait_ms": 1, "intra_op_threads": 1})
    yield app.test_client()
    app.extensions["carscope"].close()


def test_a_grouped_model_year_is_answered_with_its_model_and_years(grouped):
    j = upload(grouped, photo("blue")).get_json()  # blue: the 2022 Bolt Sedan, confidently
    assert j["model"]["top"][0]["label"] == EXPECTED["blue"] == "2022_bolt_sedan"
    assert j["model"]["top"][0]["confidence"] >= 0.5  # sure of the model-year, yet:
    answer = j["model"]["prediction"]
    assert j["model"]["sure"] is True and j["model"]["level"] == "model" == answer["level"]
    assert answer["name"] == "Bolt Sedan, 2022\u20132023" and answer["years"] == [2022, 2023]
    assert answer["make"] == "Bolt" and answer["model"] == "Sedan" and answer["grouped"] is True
    assert sorted(answer["labels"]) == GROUP
    top = {c["label"]: c["confidence"] for c in j["model"]["top"]}
    assert answer["confidence"] == pytest.approx(top[GROUP[0]] + top[GROUP[1]], abs=1e-6)
    # the specifications of no single year: what the years share, and where they differ
    assert j["specs"] is None
    assert j["specs_range"]["shared"]["engine"] == "Electric" and j["specs_range"]["shared"]["seats"] == 5
    assert j["specs_range"]["differ"]["msrp_usd"] == {"2022": 27100, "2023": 28150}
    assert "year" not in j["specs_range"]["shared"] and "model_id" not in j["specs_range"]["differ"]
    assert any("cannot tell them apart" in n for n in j["notes"])


def test_an_ungrouped_model_year_is_still_a_model_year(grouped):
    j = upload(grouped, photo("red")).get_json()
    assert j["model"]["level"] == "model_year" and j["model"]["prediction"]["label"] == EXPECTED["red"]
    assert j["specs"]["model_id"] == EXPECTED["red"] and j["specs_range"] is None


def test_the_page_shows_the_range_and_what_the_years_share(grouped):
    html = upload(grouped, photo("blue"), path="/").get_data(as_text=True)
    assert 'data-level="model"' in html and "Bolt Sedan, 2022\u20132023" in html
    assert "data-specs-range" in html and "data-specs-differ" in html and "Where the years differ" in html
    assert "$27,100" in html and "$28,150" in html  # the MSRP of each year, side by side


def test_the_models_endpoint_lists_the_groups(grouped):
    levels = grouped.get("/api/v1/models").get_json()["levels"]
    assert levels == {"groups": [GROUP], "names": ["Bolt Sedan, 2022\u20132023"]}


def test_openapi_documents_the_levels(grouped):
    spec = grouped.get("/api/v1/openapi.json").get_json()
    model = spec["components"]["schemas"]["Prediction"]["properties"]["model"]
    assert model["properties"]["level"]["enum"] == ["model_year", "model", "make", None]
    assert "unknown_model" in model["properties"]["reason"]["enum"]
    assert spec["components"]["schemas"]["Answer"]["properties"]["level"]["enum"] == ["model_year", "model", "make"]


def test_predict_rows_carry_the_level(tmp_path):
    from carscope.serve.predict_cli import row_for

    bundle = make_tiny_bundle(tmp_path / "bundle", groups=[GROUP])
    from carscope.serve.app import create_app

    app = create_app(bundle, {"providers": "cpu", "max_wait_ms": 1, "intra_op_threads": 1})
    try:
        result = app.extensions["carscope"].predict(photo("blue"))
    finally:
        app.extensions["carscope"].close()
    row = row_for(tmp_path / "blue.jpg", result, None, 3)
    assert row["level"] == "model" and row["answer"] == "Bolt Sedan, 2022\u20132023" and row["sure"] is True
    assert row["label"] == "2022_bolt_sedan"  # the top-1 model-year is still listed


def test_top_indices_equal_a_stable_full_sort():
    """serve's top-k without sorting every class: the same indices in the same order as a stable argsort, ties by
    index, at class counts on both sides of the full-sort shortcut."""
    import numpy as np

    from carscope.serve.predictor import top_indices

    rng = np.random.default_rng(0)
    for n, k in ((5, 5), (7, 3), (19_200, 5), (1_000, 1), (50, 0)):
        for p in (rng.random(n), np.round(rng.random(n), 2), np.full(n, 0.5)):  # distinct, many ties, all equal
            want = np.argsort(-p, kind="stable")[:k]
            assert top_indices(p, k).tolist() == want.tolist(), (n, k)
