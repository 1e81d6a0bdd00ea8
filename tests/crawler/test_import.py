"""`carscope dataset import`: image folders, manifests of paths and loopback URLs, image parquet; labels, specs,
splits and views; failures as data; one-line errors; resume after a kill."""

from __future__ import annotations

import hashlib
import json
import os
import random
import signal
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from carscope.commands.cli import main
from carscope.crawler import dataset as ds
from carscope.crawler.config import CrawlConfig
from carscope.crawler.importer import ImportConfig, import_dataset
from carscope.crawler.labels import Identity, LabelParser
from carscope.crawler.sources import Columns
from tests.crawler.import_helpers import photo_server, write_hf_parquet, write_manifest
from tests.datasets import make_photo_folder, tiny_photos

REPO = Path(__file__).resolve().parents[2]


def run_import(source, out, **kw) -> dict:
    crawl = CrawlConfig("import:", str(out), progress=False, log=False, backoff_base=0.02,
                        install_signal_handlers=False, **kw.pop("crawl", {}))
    return import_dataset(ImportConfig(str(source), str(out), crawl=crawl, **kw))


def shas(data_list) -> set[str]:
    return {hashlib.sha256(d).hexdigest() for d in data_list}


# ------------------------------------------------------------------------------------------------ labels
@pytest.mark.parametrize("label, model_id, make, model, year", [
    ("2023_acme_roadster", "2023_acme_roadster", "acme", "roadster", 2023),
    ("2023 Acme Road Star", "2023_acme_road_star", "Acme", "Road Star", 2023),
    ("AM General Hummer SUV 2000", "2000_am_general_hummer_suv", "AM General", "Hummer SUV", 2000),
    ("Land Rover Range Rover SUV 2012", "2012_land_rover_range_rover_suv", "Land Rover", "Range Rover SUV", 2012),
    ("acme/roadster/2023", "2023_acme_roadster", "acme", "roadster", 2023),
    ("Škoda Octavia 2019", "2019_skoda_octavia", "Škoda", "Octavia", 2019),
])
def test_auto_pattern_reads_both_spellings(label, model_id, make, model, year):
    assert LabelParser("auto").parse(label) == Identity(model_id, make, model, year, label)


def test_auto_keeps_a_label_without_a_year_as_a_plain_class():
    assert LabelParser("auto").parse("Golden Retriever") == Identity("golden_retriever", None, None, None,
                                                                      "Golden Retriever")
    assert LabelParser("none").parse("2023_acme_roadster").year is None


def test_a_users_pattern_is_strict():
    p = LabelParser(r"^(?P<make>\w+)-(?P<model>\w+)-(?P<year>\d{4})$")
    assert p.parse("acme-bolt-2021").model_id == "2021_acme_bolt"
    assert p.parse("acme bolt 2021") == "label_unparsed"
    assert p.parse("acme-bolt-0999") == "bad_year"


@pytest.mark.parametrize("pattern, words", [("(?P<make>", "not a valid regex"), ("(?P<brand>\\w+)", "brand"),
                                            ("\\w+", "names no group")])
def test_a_bad_pattern_is_one_line(pattern, words):
    from carscope.common.errors import CarscopeError

    with pytest.raises(CarscopeError, match=words):
        LabelParser(pattern)


# ------------------------------------------------------------------------------------------------ folder
def test_folder_import_keeps_classes_views_and_the_published_split(tmp_path):
    src = make_photo_folder(tmp_path / "photos", splits=True)
    (src / "train" / "2023_make0_model0" / "exterior" / "broken.jpg").write_bytes(b"\xff\xd8\xff not a jpeg")
    (src / "train" / "2023_make0_model0" / "exterior" / "notes.txt").write_text("not a photo")
    stats = run_import(src, tmp_path / "ds")
    d = ds.load(tmp_path / "ds")
    expected = shas(data for _, _, data in tiny_photos())
    assert set(d.images["sha256"]) == expected and stats["images"]["stored"] == 36
    assert dict(d.images["split"].value_counts()) == {"train": 30, "test": 6}
    assert dict(d.images["view_hint"].value_counts()) == {"exterior": 24, "interior": 12}
    assert sorted(d.specs["model_id"]) == [f"2023_make{c}_model{c}" for c in range(3)]
    assert d.specs["year"].tolist() == [2023] * 3
    fails = d.failures
    assert fails["reason"].tolist() == ["corrupt_image"] and fails["url"][0].endswith("/broken.jpg")
    assert stats["import"]["format"] == "folder" and stats["status"] == "complete"
    assert all(u.startswith("file:///") for u in d.images["source_url"])


def test_folder_without_view_folders_uses_view_or_unknown(tmp_path):
    src = make_photo_folder(tmp_path / "photos", n_classes=2, per_class=3, interior_per_class=0, views=False,
                            class_name=lambda c: f"Make{c} Model{c} 2021")
    run_import(src, tmp_path / "plain")
    assert set(ds.load(tmp_path / "plain").images["view_hint"]) == {"unknown"}
    run_import(src, tmp_path / "ext", view="exterior")
    d = ds.load(tmp_path / "ext")
    assert set(d.images["view_hint"]) == {"exterior"}
    assert sorted(d.specs["model_id"]) == ["2021_make0_model0", "2021_make1_model1"]


def test_a_strict_pattern_turns_unparsed_labels_into_failure_rows(tmp_path):
    src = make_photo_folder(tmp_path / "photos", n_classes=2, per_class=2, interior_per_class=0, views=False,
                            class_name=lambda c: f"2022_make{c}_model{c}")
    make_photo_folder(tmp_path / "photos", n_classes=1, per_class=2, interior_per_class=0, views=False,
                      class_name=lambda c: "misc", seed=9)
    stats = run_import(src, tmp_path / "ds", label_pattern=r"^(?P<year>\d{4})_(?P<make>[^_]+)_(?P<model>.+)$")
    d = ds.load(tmp_path / "ds")
    assert sorted(d.specs["model_id"]) == ["2022_make0_model0", "2022_make1_model1"]
    unparsed = d.failures[d.failures["reason"] == "label_unparsed"]
    assert len(unparsed) == 2 and set(unparsed["kind"]) == {"label"}
    assert all("/misc/" in u for u in unparsed["url"])
    assert stats["import"]["rejected"] == {"label_unparsed": 2} and len(d.images) == 4


# ---------------------------------------------------------------------------------------------- manifest
def test_manifest_of_paths_and_loopback_urls(tmp_path):
    manifest, served = write_manifest(tmp_path / "m", "http://placeholder")
    served["/img/missing.jpg"] = None  # listed but not served: a 404
    with photo_server({k: v for k, v in served.items() if v is not None},
                      robots="User-agent: *\nDisallow: /img/p0004.jpg\n") as (base, log):
        text = manifest.read_text().replace("http://placeholder", base)
        text += f",{base}/img/missing.jpg,Make0,Model 0,2023,exterior,150\n"
        manifest.write_text(text)
        stats = run_import(manifest, tmp_path / "ds")
    d = ds.load(tmp_path / "ds")
    expected = shas(data for i, (_, _, data) in enumerate(tiny_photos()) if i != 4)
    assert set(d.images["sha256"]) == expected
    urls = d.images["source_url"]
    assert urls.str.startswith("http://127.0.0.1").sum() == 17 and urls.str.startswith("file://").sum() == 18
    reasons = dict(zip(d.failures["url"].str.rsplit("/", n=1).str[-1], d.failures["reason"], strict=True))
    assert reasons == {"p0004.jpg": "robots_disallowed", "missing.jpg": "http_404"}
    assert "/img/p0004.jpg" not in log and log.count("/robots.txt") == 1
    assert d.specs.set_index("model_id")["horsepower"].to_dict() == {
        "2023_make0_model_0": 150, "2023_make1_model_1": 160, "2023_make2_model_2": 170}
    assert d.specs["model"].tolist() == ["Model 0", "Model 1", "Model 2"]
    assert stats["import"]["views"] == {"exterior": 25, "interior": 12}


def test_manifest_columns_by_option_jsonl_and_specs_join(tmp_path):
    rows = []
    (tmp_path / "pics").mkdir()
    for i, (c, _view, data) in enumerate(tiny_photos(2, 3, interior_per_class=0)):
        (tmp_path / "pics" / f"{i}.jpg").write_bytes(data)
        rows.append({"file_name": f"{i}.jpg", "cls": f"{2020 + c}_acme_bolt{c}", "partition": "validation"
                     if i == 0 else None})
    rows.append({"file_name": f"{len(rows) - 1}.jpg", "cls": "2020_acme_bolt0", "partition": None})  # listed twice
    manifest = tmp_path / "list.jsonl"
    manifest.write_text("".join(json.dumps(r) + "\n" for r in rows))
    specs = tmp_path / "specs.csv"
    specs.write_text("label,Length (mm),msrp_usd,Fuel\n2020_acme_bolt0,4500,25000,Diesel\nsomething_else,1,2,3\n")
    stats = run_import(manifest, tmp_path / "ds", base_dir=str(tmp_path / "pics"), specs=str(specs),
                       columns=Columns(path="file_name", label="cls", split="partition"), view="exterior")
    d = ds.load(tmp_path / "ds")
    assert len(d.images) == 6 and d.images["split"].eq("val").sum() == 1
    s = d.specs.set_index("model_id")
    assert s.loc["2020_acme_bolt0", "msrp_usd"] == 25000 and s.loc["2020_acme_bolt0", "fuel"] == "Diesel"
    assert s.loc["2020_acme_bolt0", "length_in"] == pytest.approx(177.17, abs=0.01)
    assert json.loads(s.loc["2020_acme_bolt0", "units"]) == {"length_in": "mm"}
    assert pd.isna(s.loc["2021_acme_bolt1", "msrp_usd"])
    imp = stats["import"]
    assert (imp["specs_joined"], imp["specs_unmatched"], imp["labels_without_specs"]) == (1, 1, 1)
    assert imp["duplicate_rows"] == 1 and imp["label_conflicts"] == 1


# ------------------------------------------------------------------------------------------------- parquet
def test_hf_parquet_with_class_names_and_split_files(tmp_path):
    bad = {"image": {"bytes": b"GIF89a broken", "path": None}, "label": 0, "view": "exterior"}
    none = {"image": {"bytes": None, "path": None}, "label": 1, "view": "exterior"}
    src = write_hf_parquet(tmp_path / "hf", extra_rows=[bad, none])
    stats = run_import(src, tmp_path / "ds")
    d = ds.load(tmp_path / "ds")
    assert set(d.images["sha256"]) == shas(data for _, _, data in tiny_photos())
    assert sorted(d.specs["model_id"]) == ["2023_make0_model_0", "2023_make1_model_1", "2023_make2_model_2"]
    assert dict(d.images["split"].value_counts()) == {"train": 30, "test": 6}
    assert sorted(d.failures["reason"]) == ["corrupt_image", "no_image_bytes"]
    assert all("train-00000-of-00001.parquet#row=" in u for u in d.failures["url"])
    assert stats["import"]["format"] == "hf" and stats["import"]["bytes_rows_left"] == 0


def test_importing_again_with_resume_adds_nothing(tmp_path):
    src = write_hf_parquet(tmp_path / "hf")
    run_import(src, tmp_path / "ds")
    before = ds.load(tmp_path / "ds").images
    stats = run_import(src, tmp_path / "ds", resume=True)
    after = ds.load(tmp_path / "ds").images
    assert stats["images"]["stored"] == 36 and len(after) == 36
    pd.testing.assert_frame_equal(before, after)


# ---------------------------------------------------------------------------------------------- bad input
def _cli(args, capsys) -> tuple[int, str]:
    code = main(args)
    err = capsys.readouterr().err.strip()
    return code, err


def test_bad_input_is_one_line_and_exit_2(tmp_path, capsys):
    (tmp_path / "empty" / "class").mkdir(parents=True)
    (tmp_path / "empty" / "class" / "readme.txt").write_text("x")
    nopath = tmp_path / "nopath.csv"
    nopath.write_text("label,other\na,b\n")
    broken = tmp_path / "broken.parquet"
    broken.write_bytes(b"PAR1 this is not parquet")
    folder = make_photo_folder(tmp_path / "photos", n_classes=2, per_class=1, interior_per_class=0, views=False)
    cases = [
        (["dataset", "import", str(tmp_path / "empty"), "--out", str(tmp_path / "o1")], "holds no images"),
        (["dataset", "import", str(nopath), "--out", str(tmp_path / "o2")], "no path or url column"),
        (["dataset", "import", str(broken), "--out", str(tmp_path / "o3")], "not a readable parquet"),
        (["dataset", "import", str(folder), "--out", str(tmp_path / "o4"), "--label-pattern",
          r"^(?P<make>x)_(?P<model>y)$"], "matches none of the labels"),
        (["dataset", "import", str(tmp_path / "nothing"), "--out", str(tmp_path / "o5")], "does not exist"),
        (["dataset", "import", str(nopath), "--out", str(tmp_path / "o6"), "--path-column", "file"],
         "--path-column file"),
    ]
    for args, words in cases:
        code, err = _cli(args, capsys)
        assert code == 2 and len(err.splitlines()) == 1 and words in err, (args, err)
        out = Path(args[args.index("--out") + 1])
        assert not out.exists(), f"{out} left behind after bad input"


def test_resume_with_other_options_is_refused(tmp_path, capsys):
    src = make_photo_folder(tmp_path / "photos", n_classes=2, per_class=2, interior_per_class=0, views=False)
    assert _cli(["dataset", "import", str(src), "--out", str(tmp_path / "ds"), "--quiet"], capsys)[0] == 0
    code, err = _cli(["dataset", "import", str(src), "--out", str(tmp_path / "ds"), "--resume", "--view",
                      "exterior"], capsys)
    assert code == 2 and "other settings (view)" in err
    code, err = _cli(["dataset", "import", str(src), "--out", str(tmp_path / "ds")], capsys)
    assert code == 2 and "--resume" in err


# --------------------------------------------------------------------------------------------- kill/resume
def _table(root: Path) -> dict:
    d = ds.load(root)
    images = d.images[["sha256", "path", "model_id", "view_hint", "split", "source_url", "width", "height"]]
    failures = d.failures[["url", "kind", "reason"]]
    return {"images": images.sort_values("sha256").reset_index(drop=True),
            "failures": failures.sort_values("url").reset_index(drop=True),
            "specs": d.specs.drop(columns=["crawled_at"]).sort_values("model_id").reset_index(drop=True),
            "files": sorted(str(p.relative_to(root)) for p in (root / "images").rglob("*") if p.is_file())}


def _killed_and_resumed(source: str, out: Path, rounds: int, rng: random.Random, extra: list[str]) -> int:
    kills = 0
    for i in range(rounds + 1):
        cmd = [sys.executable, "-m", "carscope", "dataset", "import", source, "--out", str(out), "--quiet", *extra]
        if i:
            cmd.append("--resume")
        proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        if i < rounds:
            try:
                proc.wait(timeout=rng.uniform(0.8, 2.0))
            except subprocess.TimeoutExpired:
                proc.send_signal(signal.SIGKILL)
                kills += 1
            proc.wait(timeout=30)
            proc.communicate()
            continue
        out_text, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err.decode()[-500:]
    return kills


@pytest.mark.slow
def test_killed_imports_resume_to_the_same_dataset(tmp_path):
    """SIGKILL at random moments (URL manifest and image parquet), then --resume: the same dataset as an
    import that never stopped. The photo server is slow enough that each kill lands mid-import."""
    rng = random.Random(int(os.environ.get("CARSCOPE_TEST_SEED", "7")))
    manifest, served = write_manifest(tmp_path / "m", "http://placeholder", n_classes=4, per_class=30,
                                      interior_per_class=10, url_every=1)
    hf = write_hf_parquet(tmp_path / "hf", n_classes=4, per_class=40, interior_per_class=10)
    with photo_server(served, delay_s=0.03) as (base, log):
        manifest.write_text(manifest.read_text().replace("http://placeholder", base))
        extra = ["--per-host", "4"]
        run_import(manifest, tmp_path / "whole", crawl={"per_host": 4})
        kills = _killed_and_resumed(str(manifest), tmp_path / "resumed", 3, rng, extra)
        first = _table(tmp_path / "whole")
        again = _table(tmp_path / "resumed")
    assert kills >= 2, "the import finished before it could be killed: make the server slower"
    assert len(first["images"]) == 160
    for key in first:
        if key == "files":
            assert first[key] == again[key]
        else:
            pd.testing.assert_frame_equal(first[key], again[key])
    run_import(hf, tmp_path / "hf-whole")
    _killed_and_resumed(str(hf), tmp_path / "hf-resumed", 3, rng, [])
    a, b = _table(tmp_path / "hf-whole"), _table(tmp_path / "hf-resumed")
    for key in a:
        if key == "files":
            assert a[key] == b[key]
        else:
            pd.testing.assert_frame_equal(a[key], b[key])
    assert not list((tmp_path / "resumed" / "images").rglob("*.part"))
