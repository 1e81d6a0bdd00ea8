"""Imported photos all the way through: `carscope dataset import` (image folder, manifest of paths and
loopback URLs, image parquet, a folder of classes without a year) -> `carscope train model` -> `carscope export`.

The three sources hold the same drawn photos, so one view run (trained on the folder import) serves every
export: its test photos are in each dataset by content hash."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from carscope.commands.cli import main
from tests.crawler.import_helpers import photo_server, write_hf_parquet, write_manifest
from tests.datasets import make_photo_folder

pytestmark = pytest.mark.slow
TRAIN = ["--arch", "tinynet", "--img-size", "32", "--epochs", "2", "--batch-size", "16", "--workers", "0",
         "--threads", "2", "--no-progress", "--min-class-images", "3"]


def _ok(argv: list[str]) -> None:
    assert main([str(a) for a in argv]) == 0, argv


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    root = tmp_path_factory.mktemp("import-pipeline")
    folder = make_photo_folder(root / "photos", splits=True,
                               class_name=lambda c: f"Make{c} Model {c} 2023")  # the names the parquet uses
    _ok(["dataset", "import", folder, "--out", root / "ds-folder", "--quiet"])
    _ok(["train", "view", "--data", root / "ds-folder", "--out", root / "view", *TRAIN])
    return root


def _train_and_export(work: Path, data: Path, name: str, extra: tuple[str, ...] = ()) -> Path:
    _ok(["train", "model", "--data", data, "--out", work / f"model-{name}", *TRAIN, *extra])
    _ok(["export", "--view-run", work / "view", "--model-run", work / f"model-{name}", "--data", data,
         "--out", work / f"bundle-{name}"])
    return work / f"bundle-{name}"


def _bundle_labels(bundle: Path) -> list[str]:
    meta = json.loads((bundle / "bundle.json").read_text())
    return meta["models"]["model"]["labels"]


EXPECTED = ["2023_make0_model_0", "2023_make1_model_1", "2023_make2_model_2"]


def test_folder_import_trains_and_exports(work):
    bundle = _train_and_export(work, work / "ds-folder", "folder")
    assert _bundle_labels(bundle) == EXPECTED
    splits = pd.read_parquet(work / "model-folder" / "splits.parquet")
    assert (splits.loc[splits["published"] == "test", "split"] == "test").all()  # the published test split
    assert set(splits.loc[splits["split"] == "test", "published"]) == {"test"}
    assert pd.read_parquet(bundle / "specs.parquet")["year"].tolist() == [2023] * 3


def test_manifest_import_with_paths_and_urls_trains_and_exports(work):
    manifest, served = write_manifest(work / "manifest", "http://placeholder")
    with photo_server(served) as (base, log):
        manifest.write_text(manifest.read_text().replace("http://placeholder", base))
        _ok(["dataset", "import", manifest, "--out", work / "ds-manifest", "--quiet"])
    assert sum(p.startswith("/img/") for p in log) == len(served)
    bundle = _train_and_export(work, work / "ds-manifest", "manifest")
    assert _bundle_labels(bundle) == EXPECTED
    specs = pd.read_parquet(bundle / "specs.parquet").set_index("model_id")
    assert specs["horsepower"].tolist() == [150, 160, 170]


def test_parquet_import_trains_and_exports(work):
    hf = write_hf_parquet(work / "hf")
    _ok(["dataset", "import", hf, "--out", work / "ds-hf", "--quiet"])
    bundle = _train_and_export(work, work / "ds-hf", "hf")
    assert _bundle_labels(bundle) == EXPECTED


def test_classes_without_a_year_train_as_plain_classes(work):
    folder = make_photo_folder(work / "plain", class_name=lambda c: f"Make{c} Model {c} 2023".rsplit(" ", 1)[0])
    _ok(["dataset", "import", folder, "--out", work / "ds-plain", "--quiet"])
    bundle = _train_and_export(work, work / "ds-plain", "plain")
    assert _bundle_labels(bundle) == ["make0_model_0", "make1_model_1", "make2_model_2"]
    report = json.loads((work / "model-plain" / "report.json").read_text())
    assert report["data"]["plain_classes"] is True and report["data"]["target_year"] is None


def test_exterior_only_photos_export_with_a_view_run_from_another_dataset(work, capsys):
    """Stanford Cars' shape: exterior photos only (`--view exterior`), so no view run can be trained on them;
    the view run of another dataset serves, named by `--view-data`."""
    folder = make_photo_folder(work / "exterior", per_class=10, interior_per_class=0, views=False, seed=3,
                               class_name=lambda c: f"Make{c} Model {c} 2023")
    _ok(["dataset", "import", folder, "--out", work / "ds-ext", "--view", "exterior", "--quiet"])
    _ok(["train", "model", "--data", work / "ds-ext", "--out", work / "model-ext", *TRAIN])
    code = main(["export", "--view-run", str(work / "view"), "--model-run", str(work / "model-ext"),
                 "--data", str(work / "ds-ext"), "--out", str(work / "bundle-ext-refused")])
    assert code == 2 and "does not match run" in capsys.readouterr().err
    _ok(["export", "--view-run", work / "view", "--model-run", work / "model-ext", "--data", work / "ds-ext",
         "--view-data", work / "ds-folder", "--out", work / "bundle-ext"])
    meta = json.loads((work / "bundle-ext" / "bundle.json").read_text())
    assert meta["models"]["model"]["labels"] == EXPECTED
    assert meta["source"]["view_data"] == str((work / "ds-folder").resolve())
