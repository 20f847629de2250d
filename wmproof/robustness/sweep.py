"""The sweep's driver: which units are still to do, handing them to an executor, writing each result as it
comes, and resuming.

A sweep's folder::

    sweep.json                          the configuration (a resumed sweep must have the same)
    models/seed-S/clean.json            stage 1: the owner's clean model's record ...
    models/seed-S/clean/model.safetensors          ... and its file
    models/seed-S/unmarked.json, unmarked/         the unmarked negative of the seed
    models/seed-S/SCHEME.json, SCHEME/{key.wmk,key.wvk,model.safetensors}   the key and the marked model
    cells/ATTACK/PARAM=VALUE/seed-S/SUBJECT.json   stage 2: one record per cell

A unit is done when its record exists: its files are written first, each atomically, then the record, so an
interrupted sweep keeps every finished unit and redoes only those in flight. The marking keys are a
synthetic owner's (:func:`wmproof.robustness.work.sweep_identity`), written without a passphrase, mode 0600.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import MalformedInput, UsageError
from ..fileio import write_file
from .executors import Executor, Job
from .grid import UNMARKED, Cell, KeyUnit, ModelUnit, SweepConfig
from .work import attack_cell, make_key, train_model

MANIFEST = "sweep.json"
#: Each run of the driver on the folder (started, wall time, units run and reused, executor): the sweep's
#: wall time is their sum, however often it was interrupted and resumed.
RUNS = "runs.json"
FORMAT = "wmproof-robustness/1"


@dataclass(frozen=True)
class SweepOutcome:
    """What a run of the driver did: units run now, units found done, and its wall time."""

    ran: int
    reused: int
    wall_seconds: float


def dump_json(data: Any) -> bytes:
    """The sweep's JSON: sorted keys, one indentation, so that equal records are equal files."""
    return (json.dumps(data, indent=1, sort_keys=True, allow_nan=False) + "\n").encode()


def read_record(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise MalformedInput(f"{path}: unreadable sweep record ({type(exc).__name__})") from None
    if not isinstance(data, dict):
        raise MalformedInput(f"{path}: a sweep record is a JSON object")
    return data


def check_manifest(folder: Path, config: SweepConfig) -> None:
    """Write the configuration into a new sweep folder, or check that an existing one was made with it."""
    wanted = {"format": FORMAT, "config": config.as_dict()}
    path = folder / MANIFEST
    if path.exists():
        found = read_record(path)
        if found != json.loads(dump_json(wanted)):
            changed = sorted(
                k for k in set(wanted["config"]) | set(found.get("config", {}))
                if wanted["config"].get(k) != found.get("config", {}).get(k)
            ) or ["format"]  # fmt: skip
            raise UsageError(
                f"{folder} holds a sweep with other settings ({', '.join(changed)} differ): resume it with the "
                "same options, or give another --workdir"
            )
        return
    if folder.exists() and any(folder.iterdir()):
        raise UsageError(f"{folder} is not empty and holds no sweep ({MANIFEST}): give an empty or new --workdir")
    folder.mkdir(parents=True, exist_ok=True)
    write_file(path, dump_json(wanted), secret=False, overwrite=False)


class Sweep:
    """One sweep folder and the executor that runs its units."""

    def __init__(self, config: SweepConfig, folder: Path, executor: Executor, *, data_dir: str | None,
                 threads: int = 1, progress: bool | None = None) -> None:  # fmt: skip
        self.config, self.folder, self.executor = config, folder, executor
        self.data_dir, self.threads = data_dir, threads
        self.progress = progress
        self._bytes: dict[Path, bytes] = {}

    # -------------------------------------------------------------------------------------------- files

    def _done(self, unit_path: str) -> bool:
        return (self.folder / f"{unit_path}.json").exists()

    def _read(self, path: Path) -> bytes:
        """A file of stage 1, read once (every cell of a subject sends the same bytes object)."""
        if path not in self._bytes:
            self._bytes[path] = path.read_bytes()
        return self._bytes[path]

    def _save(self, unit_path: str, result: dict[str, Any]) -> None:
        for name, data in result.get("files", {}).items():
            target = self.folder / unit_path / name
            target.parent.mkdir(parents=True, exist_ok=True)
            write_file(target, data, secret=name.endswith(".wmk"), overwrite=True)
        record_path = self.folder / f"{unit_path}.json"
        record_path.parent.mkdir(parents=True, exist_ok=True)
        write_file(record_path, dump_json(result.get("record", result)), secret=False, overwrite=True)

    def key_record(self, seed: int, scheme: str) -> dict[str, Any]:
        return read_record(self.folder / f"{KeyUnit(seed, scheme).path}.json")

    # -------------------------------------------------------------------------------------------- stages

    def _execute(self, description: str, paths: Sequence[str], jobs: Sequence[Job]) -> None:
        from ..engine.progress import progress_bar

        if not jobs:
            return
        with progress_bar(description, len(jobs), enabled=self.progress) as tick:
            for index, result in self.executor.run(jobs):
                self._save(paths[index], result)
                tick(1, done=paths[index].split("/", 1)[1])

    def run(self) -> SweepOutcome:
        check_manifest(self.folder, self.config)
        started, begun = time.perf_counter(), time.time()
        counts = [0, 0]
        try:
            self._stages(counts)
        finally:
            self._log_run(begun, time.perf_counter() - started, *counts)
        return SweepOutcome(counts[0], counts[1], time.perf_counter() - started)

    def _log_run(self, begun: float, seconds: float, ran: int, reused: int) -> None:
        path = self.folder / RUNS
        runs = read_runs(self.folder)
        runs.append({"started": int(begun), "wall_seconds": round(seconds, 1), "units_scheduled": ran,
                     "units_reused": reused, "executor": self.executor.describe()})  # fmt: skip
        write_file(path, dump_json(runs), secret=False, overwrite=True)

    def _stages(self, counts: list[int]) -> None:
        config = self.config

        def pending(units: Sequence[Any]) -> list[Any]:
            todo = [u for u in units if not self._done(u.path)]
            counts[0] += len(todo)
            counts[1] += len(units) - len(todo)
            return todo

        models: list[ModelUnit] = pending(config.model_units())
        self._execute("training the owners' and the unmarked models", [u.path for u in models],
                      [(train_model, (config, u, self.data_dir, self.threads)) for u in models])  # fmt: skip

        keys: list[KeyUnit] = pending(config.key_units())

        def model(seed: int, role: str) -> bytes:
            return self._read(self.folder / ModelUnit(seed, role).path / "model.safetensors")

        self._execute("making and embedding the keys", [u.path for u in keys],
                      [(make_key, (config, u, model(u.seed, "clean"), model(u.seed, UNMARKED), self.data_dir,
                                   self.threads)) for u in keys])  # fmt: skip

        cells: list[Cell] = pending(config.cells())
        jobs, paths = [], []
        for cell in cells:
            subject = self._subject_model(cell)
            if subject is None:  # the scheme could not embed its key: nothing to attack
                record = self.key_record(cell.seed, cell.subject)
                self._save(cell.path, {"record": {"cell": cell.id, "skipped": record.get("reason", "not embedded")}})
                continue
            jobs.append((attack_cell, (config, cell, subject, self._key_files(cell), self.data_dir, self.threads)))
            paths.append(cell.path)
        self._execute("attacking", paths, jobs)

    def _subject_model(self, cell: Cell) -> bytes | None:
        if cell.subject == UNMARKED:
            return self._read(self.folder / ModelUnit(cell.seed, UNMARKED).path / "model.safetensors")
        path = self.folder / KeyUnit(cell.seed, cell.subject).path / "model.safetensors"
        return self._read(path) if path.exists() else None

    def _key_files(self, cell: Cell) -> dict[str, tuple[bytes, bytes]]:
        schemes = self.config.schemes if cell.subject == UNMARKED else (cell.subject,)
        out = {}
        for scheme in schemes:
            folder = self.folder / KeyUnit(cell.seed, scheme).path
            out[scheme] = (self._read(folder / "key.wmk"), self._read(folder / "key.wvk"))
        return out


def read_runs(folder: Path) -> list[dict[str, Any]]:
    path = folder / RUNS
    if not path.exists():
        return []
    try:
        runs = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        raise MalformedInput(f"{path}: unreadable") from None
    if not isinstance(runs, list):
        raise MalformedInput(f"{path}: a list of runs")
    return runs


def load_records(folder: Path, config: SweepConfig) -> dict[str, Any]:
    """Every record of a finished sweep, in the configuration's order: what the report is made from."""

    def read(path: str) -> dict[str, Any]:
        file = folder / f"{path}.json"
        if not file.exists():
            raise UsageError(f"{folder}: the sweep is not finished ({path} is missing): run it again to resume")
        return read_record(file)

    return {
        "config": config.as_dict(),
        "models": [read(u.path) for u in config.model_units()],
        "keys": [read(u.path) for u in config.key_units()],
        "cells": [read(c.path) for c in config.cells()],
    }
