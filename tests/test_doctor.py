"""`carscope doctor`: every check answers, and each "no" carries its reason."""

from __future__ import annotations

import json

from carscope.commands.cli import main


def test_doctor_reports_every_check_with_reasons(capsys):
    assert main(["doctor", "--json"]) == 0
    r = json.loads(capsys.readouterr().out)
    t = r["torch"]
    assert t["ok"] and t["version"].startswith("2.14.1")
    assert t["cuda"]["ok"] or t["cuda"]["reason"]  # a "no" always says why
    assert t["cpu_training_precision"].startswith(("bf16", "fp32"))
    o = r["onnxruntime"]
    assert set(o["providers"]) == {"CUDAExecutionProvider", "TensorrtExecutionProvider"}
    for p in o["providers"].values():
        assert p["ok"] or p["reason"]
    if not t["cuda"]["ok"]:  # no GPU: the providers cannot load either, and say so without a traceback
        assert not o["providers"]["CUDAExecutionProvider"]["ok"]
        assert "Traceback" not in o["providers"]["CUDAExecutionProvider"]["reason"]
    assert r["chromium"]["ok"], r["chromium"]  # CI installs Chromium; the browser tests need it too
    assert [d["what"] for d in r["disk"]] == ["working directory", "cache", "temp"]
    assert all(d["free_gib"] > 0 for d in r["disk"])


def test_doctor_text_is_one_line_per_check(capsys):
    assert main(["doctor"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("carscope ")
    checks = [ln for ln in out[1:] if ln.startswith(("  ok ", "  no ", "  -- "))]
    assert len(checks) == len(out) - 1 >= 9
    assert any("serve on CUDAExecutionProvider" in ln for ln in checks)
