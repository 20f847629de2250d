"""Docs that run (issue 15, item 1): every command block in README.md and docs/user-guide.md is run by a test
as written, or says why it is not.

A block's language says what it is: ```sh (commands), ```python, ```text (output, a tree: never run). A
command block is run by this file, in order, one folder per page, unless the line above it is an HTML
comment, invisible on the rendered page, that says ``not run by tests/test_docs.py: REASON`` or
``run by tests/FILE`` (another test runs it as written; that file must name the page). A block without a
language is refused: each block must say which it is.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", ROOT / "docs" / "user-guide.md"]
LANGUAGES = {"sh", "python", "text"}


@dataclass(frozen=True)
class Block:
    page: Path
    line: int
    language: str
    body: str
    note: str  # the HTML comment on the line above, or ""

    @property
    def runs_here(self) -> bool:
        return self.language in ("sh", "python") and not self.note


def blocks(page: Path) -> list[Block]:
    lines = page.read_text().splitlines()
    found, i = [], 0
    while i < len(lines):
        if lines[i].startswith("```"):
            language, start = lines[i][3:].strip(), i
            end = next(j for j in range(i + 1, len(lines)) if lines[j] == "```")
            above = lines[i - 1].strip() if i else ""
            note = above if above.startswith("<!--") else ""
            found.append(Block(page, start + 1, language, "\n".join(lines[i + 1 : end]) + "\n", note))
            i = end + 1
        else:
            i += 1
    return found


def test_every_block_says_what_it_is():
    for page in PAGES:
        for block in blocks(page):
            where = f"{page.name}:{block.line}"
            assert block.language in LANGUAGES, f"{where}: a block without a language ({block.language!r})"
            if block.note:
                assert block.language in ("sh", "python"), f"{where}: a note above a {block.language} block"
                other = re.fullmatch(r"<!-- run by (tests/\S+\.py)(?: .*)? -->", block.note)
                if other:
                    runner = ROOT / other.group(1)
                    assert runner.exists() and page.name in runner.read_text(), f"{where}: {other.group(1)}"
                else:
                    assert re.fullmatch(r"<!-- not run by tests/test_docs\.py: .{10,} -->", block.note), where


def script(page: Path) -> str:
    """The page's runnable blocks as one bash script, in order (Python blocks through ``python -``)."""
    parts = ["set -euo pipefail"]
    for block in blocks(page):
        if block.runs_here:
            parts.append(block.body if block.language == "sh" else f"python - <<'PYTHON'\n{block.body}PYTHON\n")
    return "\n".join(parts) + "\n"


def run_page(page: Path, folder: Path, data_dir: Path, timeout: int) -> subprocess.CompletedProcess[str]:
    with socket.socket() as probe:  # the pages serve on the port a reader would use
        assert probe.connect_ex(("127.0.0.1", 8000)) != 0, "port 8000 is taken: the pages' examples use it"
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",  # `. .venv/bin/activate`
        "WMPROOF_DATA": str(data_dir),
        "WMPROOF_HOME": str(folder / ".wmproof-home"),
    }
    env.pop("PYTHONPATH", None)
    return subprocess.run(
        ["bash", "-c", script(page)], cwd=folder, env=env, capture_output=True, text=True, timeout=timeout
    )


@pytest.mark.slow
def test_the_readme_runs_as_written(tmp_path, data_dir):
    """README.md, "Using it", from an empty folder: the owner's path, a judge, a public proof, an API."""
    done = run_page(ROOT / "README.md", tmp_path, data_dir, timeout=1200)
    assert done.returncode == 0, (done.stdout[-3000:], done.stderr[-3000:])
    out = done.stdout
    assert out.count("VERIFIED") >= 3 and "NOT VERIFIED" not in out, out[-3000:]
    assert "5 of 20 items each" in out and re.search(r"suspect +\d+ of 20 match", out), out[-3000:]
    assert (tmp_path / "key.wmk").stat().st_mode & 0o777 == 0o600


@pytest.mark.slow
def test_the_user_guide_runs_as_written(tmp_path, data_dir):
    """docs/user-guide.md: the owner, a timestamp, a judge, a public proof, a suspect behind an API."""
    done = run_page(ROOT / "docs" / "user-guide.md", tmp_path, data_dir, timeout=1200)
    assert done.returncode == 0, (done.stdout[-3000:], done.stderr[-3000:])
    out = done.stdout
    assert out.count("VERIFIED") >= 3 and "NOT VERIFIED" not in out, out[-3000:]
    assert "2 of 50 items each" in out and "registered" in out, out[-3000:]
    assert (tmp_path / "suspect.evidence.json").exists() and (tmp_path / "suspect.wpf").exists()
