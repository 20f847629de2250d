"""``wmproof prove`` and ``wmproof check``: public ownership proofs that anyone can check.

``check`` needs no secret, and without ``--model`` no torch: the proof's signatures, openings, Merkle paths
and items are checked with the crypto core and numpy alone (``pip install wmproof``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from wmproof.errors import ExitCode, UsageError
from wmproof.stats import format_probability

from .chain_cmd import (
    ChainIdOption,
    ConfirmationsOption,
    NoTimestampOption,
    RecordOption,
    RegistryOption,
    RpcUrlOption,
    embedded_warning,
    key_timestamp,
    print_timestamp,
)
from .common import (
    DeviceOption,
    JsonOption,
    OverwriteOption,
    PassphraseFileOption,
    TrustModuleOption,
    check_outputs,
    emit,
    fail,
    handle_errors,
    missing_extra,
    note,
    passphrase_to_read,
    stdout,
    trust_modules,
)
from .suspect import MaxQueriesOption, ModelNameOption, UrlOption, open_suspect


@handle_errors
def prove_command(
    key: Annotated[Path, typer.Option("--key", "-k", help="Your marking key (its spent batches are updated).")],
    vk: Annotated[Path, typer.Option("--vk", help="Your verification key.")],
    identity: Annotated[Path, typer.Option("--identity", "-i", help="Your identity (it signs the proof).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Where to write the proof (public).")],
    model: Annotated[
        Path | None,
        typer.Option("--model", "-m", help="The suspect model file the proof is about (or --url).", show_default=False),
    ] = None,
    url: UrlOption = None,
    model_name: ModelNameOption = None,
    batch: Annotated[
        int | None, typer.Option("--batch", help="Which proof batch to open (default: the next unspent one).", min=0)
    ] = None,
    passphrase_file: PassphraseFileOption = None,
    identity_passphrase_file: Annotated[
        Path | None,
        typer.Option("--identity-passphrase-file", help="Passphrase of the identity, from a file.", show_default=False),
    ] = None,
    force: Annotated[
        bool,
        typer.Option(
            "--force",
            help="Open the batch without querying the suspect first, or even if it does not pass the batch.",
        ),
    ] = False,
    device: DeviceOption = "auto",
    trust_module: TrustModuleOption = None,
    overwrite: OverwriteOption = False,
    as_json: JsonOption = False,
) -> None:
    """Make a public ownership proof about a suspect model: open the next unspent batch of your key.

    The proof holds your verification key, the batch's items with their openings and Merkle paths, the
    suspect's SHA-256 and the date, signed by your identity. Anyone can check it with `wmproof check`. Each
    batch is opened once: the marking key records it as spent (it is rewritten first, so that a batch is
    never opened twice even if writing the proof fails).

    Opening a batch publishes its items for good, so the suspect is queried on them first, as `check` will:
    if it would not pass (fewer matches than the key's per-proof threshold), nothing is spent or written and
    the exit code is 1. --force skips that check (for a suspect you cannot query from here).

    Example:

        wmproof prove -k key.wmk --vk key.wvk -i alice.wid -m suspect.safetensors -o suspect.wpf
    """
    trust_modules(trust_module)
    from wmproof.fileio import commit_file, prepare_file
    from wmproof.protocol import load_identity, load_marking_key, load_verification_key, save_marking_key
    from wmproof.protocol.proofs import api_suspect, evaluate_proof, make_proof, model_file_suspect, parse_proof

    if model is not None and url is not None:
        raise UsageError("give only one of --model and --url: one suspect at a time")
    if (model is None and url is None) or (url is not None and not model_name):
        raise UsageError("name the suspect with --model FILE or with --url URL --model-name NAME")
    if url is not None and not url.startswith(("http://", "https://")):
        raise UsageError(f"--url must be an http:// or https:// URL, not {url!r}")
    suspect = model_file_suspect(model) if model is not None else api_suspect(url, model_name)  # type: ignore[arg-type]
    check_outputs(out, overwrite=overwrite)
    verification_key = load_verification_key(vk)
    asked: list[bytes] = []
    source = passphrase_to_read(passphrase_file, str(key))

    def remembered() -> bytes:  # the marking key is re-sealed under the passphrase it was opened with
        asked.append(source())
        return asked[-1]

    marking_key = load_marking_key(key, remembered)
    owner = load_identity(
        identity, passphrase_to_read(identity_passphrase_file, str(identity), "--identity-passphrase-file")
    )
    proof, spent = make_proof(marking_key, verification_key, owner, suspect, batch=batch)
    opened = sorted(set(spent.spent) - set(marking_key.spent))[0]
    checked = None
    if not force:  # the batch's items are still secret: query the suspect before publishing them
        shape = tuple(verification_key.input_shape)
        try:
            oracle, suspect_name = open_suspect(model, url, model_name, None, device, input_shape=shape)
            report = evaluate_proof(parse_proof(proof), oracle, suspect_name)
        except ModuleNotFoundError as exc:
            message = missing_extra(exc)
            if message is None:
                raise
            raise UsageError(f"querying the suspect before opening a batch: {message[0].lower()}{message[1:]}"
                             "; or --force to open it unchecked") from None  # fmt: skip
        t = report.test
        checked = {"matches": t.matches, "items": t.n, "needed": verification_key.proof_min_matches}
        if not report.verified:
            raise fail(
                f"{suspect_name} matches {t.matches} of the {t.n} items of batch {opened}; a proof needs >= "
                f"{verification_key.proof_min_matches}: it would not verify, so nothing was spent or written "
                "(--force opens the batch anyway)",
                int(ExitCode.REJECTED),
            )
    # The proof is written (unnamed) before the batch is spent, so that a full disk or an unwritable directory
    # costs nothing; the marking key is rewritten before the proof gets its name, so that a batch is never
    # opened twice.
    with prepare_file(out, proof, secret=False, overwrite=overwrite) as prepared:
        save_marking_key(spent, key, asked[-1] if asked else None, overwrite=True)
        commit_file(prepared)
    left = len(verification_key.batches) - len(spent.spent)
    data = {"proof": str(out), "batch": opened, "batches_left": left, "bytes": len(proof), "checked": checked}

    def human() -> None:
        stdout.print(f"proof        {out}  ({len(proof):,} bytes)")
        stdout.print(
            f"batch        {opened} of {len(verification_key.batches)} ({verification_key.batch_size} items, "
            f"verified when >= {verification_key.proof_min_matches} match); {left} left"
        )
        if checked is not None:
            stdout.print(f"suspect      {checked['matches']} of {checked['items']} match (queried before opening)")
        else:
            stdout.print("suspect      not queried (--force)")

    emit(data, as_json, human)
    if left == 0:
        note("that was the key's last proof batch")


@handle_errors
def check_command(
    proof: Annotated[Path, typer.Argument(help="The ownership proof (.wpf) to check.")],
    model: Annotated[
        Path | None,
        typer.Option(
            "--model",
            "-m",
            help="The suspect model file; without it (or --url) only the proof itself is checked.",
            show_default=False,
        ),
    ] = None,
    url: UrlOption = None,
    model_name: ModelNameOption = None,
    max_queries: MaxQueriesOption = None,
    earlier: Annotated[
        list[Path] | None,
        typer.Option(
            "--earlier",
            help="An earlier proof of the same key you know of (repeatable): a batch it opened is spent.",
            show_default=False,
        ),
    ] = None,
    device: DeviceOption = "auto",
    trust_module: TrustModuleOption = None,
    record: RecordOption = None,
    no_timestamp: NoTimestampOption = False,
    rpc_url: RpcUrlOption = None,
    registry: RegistryOption = None,
    chain_id: ChainIdOption = None,
    confirmations: ConfirmationsOption = 1,
    as_json: JsonOption = False,
) -> None:
    """Check a public ownership proof: no secret needed, and no torch unless --model is given.

    Checks the owner's signatures, the verification key's opened half, that the proof opens exactly its
    batch (commitments and Merkle paths), that each item is what the public generator makes from its seed,
    and that no --earlier proof opened the same batch. With --model (the file the proof names), queries it
    on the items and applies the key's per-proof threshold. Then reports the key's timestamp.
    Exit code 0: verified (or, without --model, a valid proof); 1: not verified; 2-5: could not check.

    Examples:

        wmproof check suspect.wpf

        wmproof check suspect.wpf --model suspect.safetensors --earlier last-year.wpf
    """
    trust_modules(trust_module)
    from wmproof.protocol.proofs import check_not_reused, evaluate_proof, load_proof
    from wmproof.protocol.timestamps import format_time

    parsed = load_proof(proof)
    earlier = earlier or []
    check_not_reused(parsed, [load_proof(p) for p in earlier], [str(p) for p in earlier])
    report = None
    if model is not None or url is not None:
        shape = tuple(parsed.verification_key.input_shape)
        oracle, suspect_name = open_suspect(model, url, model_name, max_queries, device, input_shape=shape)
        report = evaluate_proof(parsed, oracle, suspect_name)
    timestamp, found = key_timestamp(
        parsed.verification_key, record, no_timestamp, rpc_url, registry, chain_id, confirmations
    )
    data: dict[str, Any] = (
        report.as_dict()
        if report is not None
        else {"verdict": "valid-not-evaluated", "mode": "public", "proof": parsed.summary()}
    )
    data["timestamp"] = timestamp

    def human() -> None:
        p = parsed.summary()
        if report is None:
            stdout.print(
                "proof        [bold green]VALID[/] (not evaluated: give --model to query the suspect)", markup=True
            )
        else:
            t = report.test
            verdict = "[bold green]VERIFIED[/]" if report.verified else "[bold red]NOT VERIFIED[/]"
            stdout.print(f"verdict      {verdict}", markup=True)
            stdout.print(
                f"matches      {t.matches} of {t.n} items of batch {p['batch']} (needed >= {p['min_matches']})"
            )
            stdout.print(f"p-value      {format_probability(t.p_value)}  (exact one-sided binomial, p0 = {t.p0})")
        stdout.print(f"key          {p['key_id'][:16]}  ({p['scheme']}, owner {p['owner_fingerprint']})")
        named = p["suspect"]
        if named["kind"] == "api":
            stdout.print(f"suspect      {named['url']} model {named['model_name']!r}")
        else:
            stdout.print(f"suspect      sha256 {named['sha256']}")
        stdout.print(f"batch        {p['batch']} of {p['batches']}, proof made {format_time(p['created_at'])}")
        if found is not None:
            print_timestamp(found)

    emit(data, as_json, human)
    if found is not None:
        embedded_warning(found.embedded)
    if report is not None and not report.verified:
        raise typer.Exit(int(ExitCode.REJECTED))
