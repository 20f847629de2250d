"""The layering rules of DEVELOPERS.md, checked: crypto imports nothing of ours nor torch; the proof path
(protocol, schemes' generators, stats) imports no torch."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _modules_after_import(statement: str) -> set[str]:
    code = f"import sys, json; {statement}; print(json.dumps(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout
    return set(json.loads(out))


def test_import_wmproof_crypto_loads_no_torch_and_nothing_else_of_ours():
    loaded = _modules_after_import("import wmproof.crypto")
    assert "torch" not in loaded and "numpy" not in loaded
    ours = {m for m in loaded if m == "wmproof" or m.startswith("wmproof.")}
    assert ours == {"wmproof"} | {m for m in ours if m.startswith("wmproof.crypto")}


def test_crypto_sources_import_only_the_standard_library_pynacl_and_msgpack():
    allowed = set(sys.stdlib_module_names) | {"nacl", "msgpack"}
    for path in (ROOT / "wmproof" / "crypto").glob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:  # relative: must stay inside the crypto package
                    assert node.level == 1, f"{path.name} reaches outside wmproof.crypto"
                    continue
                names = [node.module or ""]
            else:
                continue
            for name in names:
                assert name.split(".")[0] in allowed, f"{path.name} imports {name}"


def test_proof_path_loads_no_torch():
    loaded = _modules_after_import(
        "import wmproof.stats, wmproof.protocol, wmproof.schemes, wmproof.oracles, wmproof.schemes.abstract_images,"
        " wmproof.chain, wmproof.protocol.timestamps"
    )
    assert "torch" not in loaded


def test_the_proof_checker_loads_neither_torch_nor_web3():
    loaded = _modules_after_import("import wmproof.protocol.proofs, wmproof.protocol.timestamps")
    assert "torch" not in loaded and "web3" not in loaded


def test_the_cli_starts_without_torch_or_web3():
    """``wmproof --help`` and the commands that need neither load neither (a second each, otherwise)."""
    loaded = _modules_after_import("import wmproof_cli.main")
    assert "torch" not in loaded and "web3" not in loaded
