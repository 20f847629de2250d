"""Signed evidence of a verification through a prediction API.

A verdict about a model behind someone's API rests on what the API answered. The verifier keeps every
query (the SHA-256 of the input as sent, the label answered, the time), the server's identity and the
verdict, and signs the lot with their Ed25519 identity, so that the transcript cannot be edited afterwards:

    file      = compact JSON {"evidence": E, "signer": hex(public key), "signature": hex(64 bytes)}
    signature = Ed25519(sk, tagged_hash("wmproof/v1/remote-evidence", canonical_json(E)))
    canonical_json(E) = json.dumps(E, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
"""

from __future__ import annotations

import json
import os
from typing import Any

from ..crypto import CryptoError, VerifyKey, tagged_hash
from ..crypto.tags import REMOTE_EVIDENCE
from ..errors import MalformedInput
from ..fileio import read_file, write_file
from ..untrusted import parse_json
from .identity import Identity

EVIDENCE_FORMAT = "wmproof-remote-evidence/1"


def _canonical_json(document: Any) -> bytes:
    return json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def sign_evidence(evidence: dict[str, Any], identity: Identity) -> bytes:
    digest = tagged_hash(REMOTE_EVIDENCE, _canonical_json(evidence))
    signed = {
        "evidence": evidence,
        "signer": bytes(identity.public_key).hex(),
        "signature": identity.signing_key.sign(digest).hex(),
    }
    return json.dumps(signed, sort_keys=True, indent=1).encode() + b"\n"


def open_evidence(data: bytes, where: str = "evidence") -> tuple[dict[str, Any], VerifyKey]:
    """The evidence and its signer, once the signature is checked."""
    try:
        signed = parse_json(data)
        if set(signed) != {"evidence", "signer", "signature"}:
            raise ValueError
        signer = VerifyKey(bytes.fromhex(signed["signer"]))
        signer.verify(
            tagged_hash(REMOTE_EVIDENCE, _canonical_json(signed["evidence"])), bytes.fromhex(signed["signature"])
        )
    except (ValueError, TypeError, AttributeError, CryptoError, RecursionError):
        raise MalformedInput(f"{where}: not a validly signed evidence transcript") from None
    evidence = signed["evidence"]
    if not isinstance(evidence, dict) or evidence.get("format") != EVIDENCE_FORMAT:
        raise MalformedInput(f"{where}: signed, but not a {EVIDENCE_FORMAT} transcript")
    if not isinstance(evidence.get("queries"), list) or not isinstance(evidence.get("server"), dict):
        raise MalformedInput(f"{where}: signed, but its queries or server are missing")
    _check_consistent(evidence, where)
    return evidence, signer


def _check_consistent(evidence: dict[str, Any], where: str) -> None:
    """What a signature cannot vouch for: that the transcript agrees with itself. Every query is an input
    digest, a label and a time; the server's count is the transcript's; the verdict is a verdict, on at most
    as many items as were queried."""
    queries = evidence["queries"]
    for i, query in enumerate(queries):
        if not (
            isinstance(query, dict)
            and set(query) == {"input_sha256", "label", "time"}
            and isinstance(query["input_sha256"], str)
            and len(query["input_sha256"]) == 64
            and all(c in "0123456789abcdef" for c in query["input_sha256"])
            and type(query["label"]) is int
            and query["label"] >= 0
            and type(query["time"]) in (int, float)
        ):
            raise MalformedInput(f"{where}: query {i} is not an input digest, a label and a time")
    counted = evidence["server"].get("queries")
    if counted is not None and counted != len(queries):
        raise MalformedInput(f"{where}: the server record counts {counted!r} queries, the transcript {len(queries)}")
    verdict = evidence.get("verdict")
    if not isinstance(verdict, dict) or verdict.get("verdict") not in ("verified", "rejected"):
        raise MalformedInput(f"{where}: no verdict")
    n = (verdict.get("statistics") or {}).get("n") if isinstance(verdict.get("statistics"), dict) else None
    if n is not None and (type(n) is not int or n > len(queries)):
        raise MalformedInput(f"{where}: the verdict is about {n!r} items, but {len(queries)} were queried")


def save_evidence(data: bytes, path: str | os.PathLike[str], *, overwrite: bool = False) -> None:
    write_file(path, data, secret=False, overwrite=overwrite)


def load_evidence(path: str | os.PathLike[str]) -> tuple[dict[str, Any], VerifyKey]:
    return open_evidence(read_file(path, "an evidence transcript"), str(path))
