"""`carscope predict` over folders of photos: the API's answers and refusals, in order, written atomically."""

from __future__ import annotations

import io
import json

import pandas as pd
import pytest

from carscope.commands.cli import main
from carscope.serve import predict_cli
from tests.serve import images
from tests.serve.tinybundle import EXPECTED, photo

COLOURS = sorted(EXPECTED)


@pytest.fixture
def photos(tmp_path):
    """A folder: one photo per class (in sub-folders, to be found recursively), a broken one and a note."""
    root = tmp_path / "photos"
    (root / "more").mkdir(parents=True)
    for i, colour in enumerate(COLOURS):
        (root / ("more" if i % 2 else "") / f"{i}_{colour}.jpg").write_bytes(photo(colour, seed=i))
    (root / "9_truncated.jpg").write_bytes(photo("red")[:300])
    (root / "notes.txt").write_text("not a photo, and not looked at: its suffix is not an image's")
    return root


def run(capsys, *argv) -> tuple[int, str, str]:
    code = main(["predict", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_a_folder_gives_one_right_row_per_photo_in_order(bundle_dir, photos, tmp_path, capsys):
    out = tmp_path / "preds.csv"
    code, _, err = run(capsys, "--bundle", str(bundle_dir), str(photos), "--out", str(out), "--providers", "cpu",
                       "--jobs", "3")
    assert code == 0, err
    rows = pd.read_csv(out)
    expected_paths = sorted(str(p) for p in photos.rglob("*.jpg"))
    assert list(rows["path"]) == expected_paths  # every photo once, sorted, the .txt left out
    for row in rows.itertuples():
        if "truncated" in row.path:
            assert not row.ok and row.error_code == "corrupt_image" and pd.isna(row.label)
            continue
        colour = row.path.rsplit("_", 1)[1].removesuffix(".jpg")
        assert row.ok and row.label == EXPECTED[colour] and row.top1_label == row.label and row.sure
        assert row.view == "exterior" and row.top1_confidence == row.confidence
    assert "6 photos" in err and "5 answered (5 sure), 1 refused (corrupt_image 1)" in err


def test_rows_are_the_api_answers(bundle_dir, photos, client, capsys):
    code, out, _ = run(capsys, "--bundle", str(bundle_dir), str(photos / "0_blue.jpg"), str(photos / "more"),
                       "--providers", "cpu", "--top-k", "3")
    assert code == 0
    rows = [json.loads(line) for line in out.splitlines()]  # JSON lines on stdout by default
    assert [r["path"].rsplit("/", 1)[1] for r in rows] == ["0_blue.jpg", "1_green.jpg", "3_red.jpg"]
    for row in rows:
        with open(row["path"], "rb") as fh:
            api = client.post("/api/v1/predict", data={"image": (io.BytesIO(fh.read()), "x.jpg")},
                              content_type="multipart/form-data").get_json()
        assert row["label"] == api["model"]["top"][0]["label"]
        assert row["confidence"] == pytest.approx(api["model"]["top"][0]["confidence"], rel=1e-6)
        assert [row[f"top{i}_label"] for i in (1, 2, 3)] == [c["label"] for c in api["model"]["top"][:3]]
        assert row["view_confidence"] == pytest.approx(api["view"]["confidence"], rel=1e-6)
        assert (row["make"], row["year"]) == (api["model"]["prediction"]["make"], api["model"]["prediction"]["year"])
        assert "top4_label" not in row


def test_every_refusal_is_a_row_with_the_api_code(bundle_dir, tmp_path, capsys):
    files = {"empty.jpg": b"", "note.jpg": b"hello, not an image", "bomb.png": images.png_header_only(100_000, 100_000),
             "tiny.png": photo("red", size=(4, 4), fmt="PNG"), "ok.png": photo("green", fmt="PNG")}
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    out = tmp_path / "preds.parquet"
    code, _, _ = run(capsys, "--bundle", str(bundle_dir), str(tmp_path), "--out", str(out), "--providers", "cpu")
    assert code == 0
    rows = pd.read_parquet(out).set_index(pd.read_parquet(out)["path"].str.rsplit("/", n=1).str[1])
    assert rows.loc["ok.png", "ok"] and rows.loc["ok.png", "label"] == EXPECTED["green"]
    assert dict(rows["error_code"].dropna()) == {"bomb.png": "too_many_pixels", "empty.jpg": "empty_file",
                                                 "note.jpg": "not_an_image", "tiny.png": "bad_dimensions"}


def test_an_interrupted_run_leaves_no_file(bundle_dir, photos, tmp_path, capsys, monkeypatch):
    out = tmp_path / "preds.jsonl"
    real, seen = predict_cli.row_for, []

    def interrupt_at_the_third(*a, **k):
        seen.append(1)
        if len(seen) == 3:
            raise KeyboardInterrupt
        return real(*a, **k)

    monkeypatch.setattr(predict_cli, "row_for", interrupt_at_the_third)
    code, _, err = run(capsys, "--bundle", str(bundle_dir), str(photos), "--out", str(out), "--providers", "cpu")
    assert code == 130 and "interrupted" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["photos"]  # no output, no temporary file


@pytest.mark.parametrize("argv,message", [
    (["/no/such/dir"], "is neither a file nor a directory"),
    (["{empty}"], "no photos"),
    (["{photos}", "--out", "{tmp}/preds.txt"], "the suffix must be one of"),
    (["{photos}", "--out", "{tmp}/no/such/dir/preds.csv"], "does not exist"),
    (["{photos}", "--out", "{tmp}/old.csv"], "exists; pass --overwrite"),
    (["{photos}", "--jobs", "0"], "--jobs must be between"),
])
def test_bad_usage_is_one_line_and_exit_2(bundle_dir, photos, tmp_path, capsys, argv, message):
    (tmp_path / "empty").mkdir()
    (tmp_path / "old.csv").write_text("kept")
    argv = [a.format(photos=photos, tmp=tmp_path, empty=tmp_path / "empty") for a in argv]
    code, out, err = run(capsys, "--bundle", str(bundle_dir), *argv, "--providers", "cpu")
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1 and out == ""
    assert (tmp_path / "old.csv").read_text() == "kept"


def test_a_named_file_is_read_whatever_its_suffix(bundle_dir, photos, capsys):
    code, out, _ = run(capsys, "--bundle", str(bundle_dir), str(photos / "notes.txt"), "--providers", "cpu")
    assert code == 0 and json.loads(out)["error_code"] == "not_an_image"


def test_rows_come_in_input_order_whatever_finishes_first(tmp_path):
    import time

    paths = []
    for i in range(12):
        paths.append(tmp_path / f"{i}.jpg")
        paths[-1].write_bytes(bytes([i + 1]))

    class Answer:
        def __init__(self, n):
            self.n = n

        def to_dict(self):
            return {"n": self.n}

    class SlowFirst:  # the first photos take the longest
        def predict(self, data):
            time.sleep(0.003 * (13 - data[0]))
            return Answer(data[0])

    rows = list(predict_cli.predict_rows(SlowFirst(), paths, jobs=4))
    assert [r["n"] for _, r, _ in rows] == list(range(1, 13)) and [p for p, _, _ in rows] == paths
