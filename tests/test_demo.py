"""The demo, end to end through the CLI, at a small scale (the README's full run takes about 1.5 minutes)."""

from __future__ import annotations

import json

import pytest
from wmproof_cli.main import run_cli


@pytest.mark.slow
def test_demo_verifies_the_marked_model_and_rejects_the_others(tmp_path, data_dir, capsys):
    code = run_cli(
        [
            "demo",
            "--workdir",
            str(tmp_path),
            "--limit-train",
            "6000",
            "--epochs",
            "2",
            "--items",
            "50",
            "--triggers-per-batch",
            "8",
            "--data-dir",
            str(data_dir),
            "--json",
        ]
    )
    out = json.loads(capsys.readouterr().out)
    assert code == 0
    rows = {row["name"]: row for row in out["models"]}
    assert rows["marked"]["report"]["verdict"] == "verified"
    assert float(rows["marked"]["report"]["statistics"]["p_value"]) < 1e-6
    assert rows["marked"]["trigger_accuracy"] >= 0.95
    for name in ("clean", "independent"):
        assert rows[name]["report"]["verdict"] == "rejected" and rows[name]["trigger_accuracy"] <= 0.3
    assert rows["marked"]["test_accuracy"] >= rows["clean"]["test_accuracy"] - 0.01  # marking costs no accuracy
    # The key was timestamped on the embedded chain (this test's own data home) and read back by the judge.
    assert out["timestamp"]["embedded"] and out["timestamp"]["key_id"] == rows["marked"]["report"]["key"]["key_id"]
    assert run_cli(["timestamp", str(tmp_path / "key.wvk")]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "clean.safetensors",
        "independent.safetensors",
        "key.wmk",
        "key.wts",
        "key.wvk",
        "marked.safetensors",
        "owner.wid",
    ]
