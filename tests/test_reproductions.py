"""The reproductions' shared command line (experiments/reporting.py): an interrupted run of hours resumes from
the runs it kept, and only when they were made by the same configuration on the same device."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

EXPERIMENTS = Path(__file__).resolve().parent.parent / "experiments"

# A reproduction in miniature: three seeds, each run a function of its seed; it dies after the second seed
# when told to, as an interrupted run would, and says which seeds it computed.
SCRIPT = textwrap.dedent(
    """
    import os, sys
    sys.path.insert(0, {experiments!r})
    from reporting import keep, reproduce, resume

    def run(config, results_path):
        results = {{"config": config, "device": "cpu", "runs": []}}
        resume(results, results_path)
        done = {{r["seed"] for r in results["runs"]}}
        for seed in range(3):
            if seed in done:
                continue
            print(f"computed {{seed}}", flush=True)
            results["runs"].append({{"seed": seed, "value": seed * config["scale"]}})
            keep(results, results_path)
            if seed == 1 and os.environ.get("DIE"):
                os._exit(9)
        return results

    def plot(results, assets):
        (assets / "plot.txt").write_text("plotted")

    def render(results, command):
        return command + "\\n" + " ".join(str(r["value"]) for r in results["runs"]) + "\\n"

    reproduce("mini.py", "mini", "a miniature", {{"cpu": {{"scale": 2}}, "big": {{"scale": 3}}}}, run, plot, render)
    """
)


def _run(tmp_path: Path, *args: str, die: bool = False) -> subprocess.CompletedProcess[str]:
    script = tmp_path / "mini.py"
    script.write_text(SCRIPT.format(experiments=str(EXPERIMENTS)))
    env = {"PATH": "/usr/bin:/bin", **({"DIE": "1"} if die else {})}
    return subprocess.run([sys.executable, str(script), "--out", str(tmp_path / "out"), *args],
                          capture_output=True, text=True, env=env, timeout=120)  # fmt: skip


def test_an_interrupted_run_resumes_from_the_runs_it_kept(tmp_path):
    interrupted = _run(tmp_path, die=True)
    assert interrupted.returncode == 9 and interrupted.stdout.split() == ["computed", "0", "computed", "1"]
    kept = json.loads((tmp_path / "out" / "mini" / "results.json").read_text())
    assert [r["seed"] for r in kept["runs"]] == [0, 1] and kept["seconds"] > 0
    resumed = _run(tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    assert resumed.stdout.split() == ["computed", "2"] and "resuming: 2 runs kept" in resumed.stderr
    results = json.loads((tmp_path / "out" / "mini" / "results.json").read_text())
    assert [r["value"] for r in results["runs"]] == [0, 2, 4]
    assert results["seconds"] >= kept["seconds"] and "seconds_before" not in results  # both processes' time
    report = (tmp_path / "out" / "mini.md").read_text()
    assert report.splitlines() == [f"python experiments/mini.py --out {tmp_path / 'out'}", "0 2 4"]


def test_runs_of_another_configuration_are_not_taken(tmp_path):
    assert _run(tmp_path, die=True).returncode == 9
    other = _run(tmp_path, "--config", "big")  # same folder (--out), another configuration: every run redone
    assert other.returncode == 0, other.stderr
    assert other.stdout.split() == ["computed", "0", "computed", "1", "computed", "2"]
    results = json.loads((tmp_path / "out" / "mini" / "results.json").read_text())
    assert [r["value"] for r in results["runs"]] == [0, 3, 6]


def test_report_only_without_results_is_a_one_line_error(tmp_path):
    done = _run(tmp_path, "--report-only")
    assert done.returncode == 1 and done.stderr.strip().endswith(
        "no results to re-render; run without --report-only first"
    )
    assert len(done.stderr.strip().splitlines()) == 1


def test_a_change_to_one_groups_settings_reruns_that_group_alone(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(EXPERIMENTS))
    from reporting import Groups, keep, resume

    def part(config, group):
        return {"shared": config["shared"], "epochs": config["epochs"][group]}

    groups = Groups("arch", part, steps=("extra",))
    path = tmp_path / "results.json"
    first = {"config": {"shared": 1, "epochs": {"a": 1, "b": 1}}, "device": "cpu", "runs": [], "note": "busy"}
    first["runs"] = [{"arch": g, "seed": s} for g in "ab" for s in range(2)]
    first["extra"] = {"a": 10, "b": 20}
    keep(first, path)
    # b's epochs change: a's runs and a's later step are kept, b's are not
    changed = {"config": {"shared": 1, "epochs": {"a": 1, "b": 5}}, "device": "cpu", "runs": []}
    resume(changed, path, groups)
    assert [(r["arch"], r["seed"]) for r in changed["runs"]] == [("a", 0), ("a", 1)]
    assert changed["extra"] == {"a": 10} and changed["rerun"] == ["b"] and changed["note"] == "busy"
    assert changed["seconds_before"] == json.loads(path.read_text())["seconds"]  # the discarded time counts
    # a shared setting changes: nothing is kept; nor without groups, nor on another device
    for config, device, by in (({"shared": 2, "epochs": {"a": 1, "b": 1}}, "cpu", groups),
                               ({"shared": 1, "epochs": {"a": 1, "b": 5}}, "cpu", None),
                               ({"shared": 1, "epochs": {"a": 1, "b": 1}}, "cuda", groups)):  # fmt: skip
        other = {"config": config, "device": device, "runs": []}
        resume(other, path, by)
        assert other["runs"] == [] and "extra" not in other and "seconds_before" not in other
