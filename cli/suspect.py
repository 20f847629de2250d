"""The suspect, as the commands that query one name it: a model file (wmproof safetensors, or ONNX queried
without torch), or a model behind an Open Inference Protocol API (``--url`` and ``--model-name``); and the
signed evidence of a remote verification."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from wmproof.errors import UsageError

from .common import check_outputs, note, passphrase_to_read

UrlOption = Annotated[
    str | None,
    typer.Option(
        "--url", help="Base URL of the suspect's prediction API (Open Inference Protocol).", show_default=False
    ),
]
ModelNameOption = Annotated[
    str | None, typer.Option("--model-name", help="The model's name at --url.", show_default=False)
]
MaxQueriesOption = Annotated[
    int | None,
    typer.Option(
        "--max-queries", help="Stop before sending more than this many inputs to the API.", show_default=False, min=1
    ),
]
EvidenceOption = Annotated[
    Path | None,
    typer.Option(
        "--evidence",
        help="With --url: write the signed transcript of every query (needs --identity).",
        show_default=False,
    ),
]
IdentityOption = Annotated[
    Path | None, typer.Option("--identity", "-i", help="Your identity, to sign the evidence.", show_default=False)
]
IdentityPassphraseOption = Annotated[
    Path | None,
    typer.Option("--identity-passphrase-file", help="Passphrase of the identity, from a file.", show_default=False),
]


def open_suspect(
    model: Path | None,
    url: str | None,
    model_name: str | None,
    max_queries: int | None,
    device: str,
    input_shape: tuple[int, int, int] | None = None,
) -> tuple[Any, str]:
    """The oracle for the suspect, and a name for messages. ``input_shape`` (the key's, or the task's) is what an
    API that declares no input shape, or a flat one, is sent; it is checked against what the API declares."""
    if model is not None and url is not None:
        raise UsageError("give only one of --model and --url: one suspect at a time")
    if model is None and url is None:
        raise UsageError("name the suspect with --model FILE or with --url URL --model-name NAME")
    if model is not None:
        if model_name is not None or max_queries is not None:
            raise UsageError("--model-name and --max-queries go with --url")
        from wmproof.oracles import open_model_file

        return open_model_file(model, device), str(model)
    if not model_name:
        raise UsageError("--url needs --model-name")
    from wmproof.oracles.remote import RemoteOracle

    oracle = RemoteOracle(url, model_name, max_queries=max_queries, input_shape=input_shape)  # type: ignore[arg-type]
    return oracle, f"{url} ({model_name})"


def prepare_evidence(evidence: Path | None, url: str | None, identity: Path | None, overwrite: bool = False) -> None:
    """Refuse, before any query, evidence options that cannot work."""
    if evidence is None:
        return
    if url is None:
        raise UsageError("--evidence records queries to an API: it goes with --url")
    if identity is None:
        raise UsageError("the evidence transcript is signed: give --identity")
    check_outputs(evidence, overwrite=overwrite)


def write_evidence(
    evidence: Path | None, oracle: Any, verdict: dict[str, Any], identity: Path | None, passphrase: Path | None
) -> None:
    if evidence is None:
        return
    from wmproof.oracles.remote import evidence_document
    from wmproof.protocol import load_identity
    from wmproof.protocol.evidence import save_evidence, sign_evidence

    signer = load_identity(identity, passphrase_to_read(passphrase, str(identity), "--identity-passphrase-file"))  # type: ignore[arg-type]
    save_evidence(sign_evidence(evidence_document(oracle, verdict), signer), evidence)
    note(f"evidence: {len(oracle.records)} queries, signed by {signer.public_key.fingerprint}, in {evidence}")
