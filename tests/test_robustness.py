"""``wmproof robustness``: the quick sweep for real (every scheme x every attack on MNIST), in a local process
pool and through a real local Ray head, with identical results; resuming; the errors."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from helpers import run

from wmproof.attacks import ATTACKS, get_attack
from wmproof.errors import UsageError
from wmproof.robustness import QUICK
from wmproof.robustness.grid import UNMARKED
from wmproof.robustness.sweep import check_manifest
from wmproof.robustness.work import TIMING_FIELDS, sweep_entropy, sweep_identity
from wmproof.schemes import SCHEMES

WMPROOF = Path(sys.executable).with_name("wmproof")


# --------------------------------------------------------------------------------------------- the grid


@pytest.mark.parametrize("name", list(ATTACKS))
def test_every_attack_declares_a_strength_its_options_accept(name):
    attack = get_attack(name)
    strength = attack.strength
    assert strength.param in attack.parameters
    assert strength.quick in strength.values and len(set(strength.values)) == len(strength.values)
    for value in strength.values:
        assert attack.options({strength.param: value})[strength.param] == value
    assert attack.describe()["strength"] == {"parameter": strength.param, "values": list(strength.values)}


def test_the_quick_sweep_covers_every_scheme_and_attack_once():
    assert set(QUICK.schemes) == set(SCHEMES) and set(QUICK.attacks) == set(ATTACKS)
    cells = QUICK.cells()
    assert len(cells) == len(ATTACKS) * (len(SCHEMES) + 1)
    assert len({c.path for c in cells}) == len(cells)
    assert {c.subject for c in cells} == set(SCHEMES) | {UNMARKED}


def test_the_sweeps_keys_and_owner_are_derived_from_the_seed():
    assert sweep_identity(3).public_key.fingerprint == sweep_identity(3).public_key.fingerprint
    assert sweep_identity(3).public_key.fingerprint != sweep_identity(4).public_key.fingerprint
    draw, again, other = sweep_entropy("0/adi"), sweep_entropy("0/adi"), sweep_entropy("1/adi")
    first = draw(40)
    assert first == again(40) != other(40) and draw(40) != first


def test_a_folder_with_another_sweep_or_other_files_is_refused(tmp_path):
    check_manifest(tmp_path / "sweep", QUICK)
    check_manifest(tmp_path / "sweep", QUICK)  # the same settings: resumable
    other = dataclasses.replace(QUICK, items=31)
    with pytest.raises(UsageError, match="other settings \\(items differ\\)"):
        check_manifest(tmp_path / "sweep", other)
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "notes.txt").write_text("mine")
    with pytest.raises(UsageError, match="not empty and holds no sweep"):
        check_manifest(tmp_path / "busy", QUICK)


@pytest.mark.parametrize(
    "args, message",
    [
        (["--schemes", "adi-backdoor,nope"], "--schemes: unknown scheme 'nope'"),
        (["--attacks", "shred"], "--attacks: unknown attack 'shred'"),
        (["--dataset", "sst2"], "mnist or fashion-mnist"),
        (["--workers", "2", "--ray-address", "auto"], "--workers is for the local pool"),
        (["--report-only"], "holds no sweep"),
    ],
)
def test_user_mistakes_are_one_line_errors(tmp_path, args, message):
    result = run("robustness", "--quick", "--workdir", tmp_path / "out", *args, code=None)
    assert result.exit_code == 2 and message in result.stderr, result.stderr
    assert not (tmp_path / "out" / "sweep.json").exists()


@pytest.mark.parametrize(
    ("argv", "shown"),
    [
        ("robustness --workdir out --report docs/r.md --report-only", "wmproof robustness --workdir out"),
        ("robustness --report=docs/r.md --json --quick --seeds 2", "wmproof robustness --quick --seeds 2"),
    ],
)
def test_the_report_names_the_sweeps_command_not_the_rendering(argv, shown):
    from wmproof_cli.robustness_cmd import _sweep_command

    assert _sweep_command(argv.split()) == shown


# ------------------------------------------------------------------------------------ the sweep, for real


def _sweep(folder: Path, *extra: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(WMPROOF), "robustness", "--quick", "--workdir", str(folder), "--json", *extra],
        capture_output=True, text=True, timeout=900, env={**os.environ, **(env or {})},
    )  # fmt: skip


def _records(folder: Path) -> dict[str, dict]:
    """Every record of a sweep folder, timing fields left out, by path."""
    out = {}
    for path in sorted(folder.glob("**/*.json")):
        relative = str(path.relative_to(folder))
        if relative in ("results.json", "runs.json"):
            continue
        record = json.loads(path.read_text())
        if isinstance(record, dict):
            for name in TIMING_FIELDS:
                record.pop(name, None)
        out[relative] = record
    return out


@pytest.fixture(scope="module")
def pool_sweep(tmp_path_factory):
    folder = tmp_path_factory.mktemp("sweep") / "pool"
    done = _sweep(folder, "--workers", "2")
    assert done.returncode == 0, done.stderr
    return folder, json.loads(done.stdout), done.stderr


@pytest.mark.slow
def test_the_quick_sweep_runs_every_cell_and_reports(pool_sweep):
    folder, summary, stderr = pool_sweep
    assert "92 units run now, 0 found done" in stderr
    results = json.loads((folder / "results.json").read_text())
    assert len(results["cells"]) == len(QUICK.cells()) and len(results["keys"]) == len(SCHEMES)
    for key in results["keys"]:
        assert key["embedded"], key
        # before any attack: the owner's key holds on the marked model, on neither unmarked one, for the label
        # schemes whose null is exact; the source-to-target ones are judged at 0.05 and reported as they are
        assert not key["unmarked"]["verified"] and not key["clean"]["verified"]
        if key["scheme"] in ("adi-backdoor", "trigger-images", "frontier-stitching"):
            assert key["marked"]["verified"] and key["marked"]["watermark_accuracy"] == 1.0
    for cell in results["cells"]:
        assert 0.0 <= cell["test_accuracy_after"] <= 1.0 and cell["versions"]["torch"]
        assert set(cell["keys"]) == (set(SCHEMES) if cell["subject"] == UNMARKED else {cell["subject"]})
        for verdict in cell["keys"].values():
            assert 0.0 <= verdict["p_value"] <= 1.0 and verdict["n"] == QUICK.items
    # transfer learning is checked through the kept head, on the new task's accuracy
    transfer = [c for c in results["cells"] if c["attack"] == "transfer"]
    assert transfer and all(c["task_after"] == "fashion-mnist" for c in transfer)
    text = (folder / "robustness.md").read_text()
    assert "## The strongest attack that keeps the model useful" in text and "| adi-backdoor | prune |" in text
    assert (folder / "robustness.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(summary["summary"]) == len(SCHEMES) * len(ATTACKS)
    assert (folder / "models" / "seed-0" / "adi-backdoor" / "key.wmk").stat().st_mode & 0o777 == 0o600


@pytest.mark.slow
def test_a_resumed_sweep_redoes_only_what_is_missing_and_the_same(pool_sweep, tmp_path):
    folder, _, _ = pool_sweep
    copy = tmp_path / "copy"
    shutil.copytree(folder, copy)
    before = _records(copy)
    lost = copy / "cells" / "ftal" / "epochs=1" / "seed-0" / "plain.json"
    lost.unlink()
    (copy / "models" / "seed-0" / "ewe.json").unlink()  # its files stay: a unit whose record is missing is redone
    done = _sweep(copy, "--workers", "1")
    assert done.returncode == 0, done.stderr
    assert "2 units run now, 90 found done" in done.stderr
    assert _records(copy) == before
    assert len(json.loads((copy / "runs.json").read_text())) == 2


@pytest.mark.slow
def test_the_quick_sweep_through_a_local_ray_head_gives_the_pools_results(pool_sweep, tmp_path):
    pytest.importorskip("ray")
    folder, _, _ = pool_sweep
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    ray = str(Path(sys.executable).with_name("ray"))
    # Ray's single-machine mode keeps every server on 127.0.0.1 (wmproof.robustness.executors); a short
    # temporary folder, since Ray's socket paths must fit in 107 bytes
    env = {**os.environ, "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}
    temp = tempfile.mkdtemp(prefix="ray-", dir="/tmp")
    start = [ray, "start", "--head", f"--port={port}", "--num-cpus=2", "--include-dashboard=false",
             "--disable-usage-stats", f"--temp-dir={temp}"]  # fmt: skip
    subprocess.run(start, check=True, capture_output=True, env=env, timeout=120)
    try:
        done = _sweep(tmp_path / "ray", "--ray-address", f"127.0.0.1:{port}")
        assert done.returncode == 0, done.stderr
        assert "the Ray cluster at 127.0.0.1" in done.stderr
    finally:
        subprocess.run([ray, "stop", "--force"], capture_output=True, env=env, timeout=120)
        shutil.rmtree(temp, ignore_errors=True)
    pool, ray_records = _records(folder), _records(tmp_path / "ray")
    assert ray_records.keys() == pool.keys() and len(pool) == 1 + 8 + len(QUICK.cells())
    different = [path for path in pool if pool[path] != ray_records[path]]
    assert not different, different[:5]
    for path in (folder / "models").glob("**/*"):  # the models and keys themselves, byte for byte (the records,
        if path.is_file() and path.suffix != ".json":  # with their wall times, were compared above without them)
            assert path.read_bytes() == (tmp_path / "ray" / path.relative_to(folder)).read_bytes(), path


def _children(pid: int) -> list[int]:
    out = []
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            fields = dict(line.split(":\t", 1) for line in status.read_text().splitlines() if ":\t" in line)
        except OSError:
            continue
        if fields.get("PPid", "").strip() == str(pid):
            out.append(int(status.parent.name))
    return out


@pytest.mark.slow
def test_sigterm_stops_the_workers_at_once_and_keeps_the_finished_units(tmp_path):
    folder = tmp_path / "sweep"
    child = subprocess.Popen(
        [str(WMPROOF), "robustness", "--quick", "--workdir", str(folder), "--schemes", "adi-backdoor",
         "--attacks", "prune,ftal,rtal,extract", "--workers", "2"],
        stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 300
        while not list(folder.glob("cells/**/*.json")):
            assert child.poll() is None and time.monotonic() < deadline, child.stderr.read()
            time.sleep(0.2)
        workers = _children(child.pid)
        assert len(workers) >= 2
        child.send_signal(signal.SIGTERM)
        assert child.wait(timeout=30) == 130
    finally:
        child.kill()
    lines = [line for line in child.stderr.read().splitlines() if not line.startswith(("progress: ", "sweep "))]
    assert lines == [f"error: interrupted: the finished units are kept in {folder}; run the same command to resume"]
    time.sleep(1)
    assert not [pid for pid in workers if Path(f"/proc/{pid}").exists() and "Z" not in _state(pid)]
    (run_,) = json.loads((folder / "runs.json").read_text())
    done = list(folder.glob("cells/**/*.json"))
    assert 1 <= len(done) < 8 and run_["units_scheduled"] == 3 + 8  # stage 1 (2 models, 1 key) and the cells


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[1].split()[0]
    except (OSError, IndexError):
        return "Z"
