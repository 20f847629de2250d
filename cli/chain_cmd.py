"""``wmproof publish``, ``wmproof timestamp`` and ``wmproof chain``: timestamps on an Ethereum chain.

With no ``--rpc-url`` (and no ``$WMPROOF_RPC_URL``) every chain command uses the embedded chain in the
user's data directory, which works offline and proves nothing to anyone else; the output says so each time.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from wmproof.errors import ExitCode, Interrupted, UsageError, WmproofError

from .common import (
    JsonOption,
    OverwriteOption,
    check_outputs,
    emit,
    handle_errors,
    note,
    passphrase_to_read,
    stdout,
    warn,
)

if TYPE_CHECKING:
    from wmproof.chain import ChainSettings
    from wmproof.protocol import VerificationKey
    from wmproof.protocol.timestamps import KeyTimestamp

RECORD_SUFFIX = ".wts"

RpcUrlOption = Annotated[
    str | None,
    typer.Option(
        "--rpc-url",
        envvar="WMPROOF_RPC_URL",
        help="JSON-RPC URL of an Ethereum node (prefer the environment variable: URLs often carry API keys). "
        "Without it: the embedded chain, which proves nothing to outsiders.",
        show_default=False,
    ),
]
RegistryOption = Annotated[
    str | None,
    typer.Option(
        "--registry",
        envvar="WMPROOF_REGISTRY",
        help="Address of the wmproof registry on that node.",
        show_default=False,
    ),
]
ChainIdOption = Annotated[
    int | None,
    typer.Option(
        "--chain-id",
        envvar="WMPROOF_CHAIN_ID",
        help="Refuse to work unless the node is this chain.",
        show_default=False,
        min=1,
    ),
]
ConfirmationsOption = Annotated[
    int,
    typer.Option(
        "--confirmations", help="Blocks (the registration's included) before a timestamp counts as final.", min=1
    ),
]
KeystoreOption = Annotated[
    Path | None,
    typer.Option(
        "--keystore",
        envvar="WMPROOF_KEYSTORE",
        help="Ethereum keystore file (encrypted JSON) of the account that pays; or put a private key in "
        "$WMPROOF_ETH_PRIVATE_KEY. Never on the command line.",
        show_default=False,
    ),
]
KeystorePassphraseOption = Annotated[
    Path | None,
    typer.Option(
        "--keystore-passphrase-file",
        help="Read the keystore's passphrase from this file ('-': stdin).",
        show_default=False,
    ),
]
RecordOption = Annotated[
    Path | None,
    typer.Option(
        "--record", help="The key's timestamp record (needed for a key published in a batch).", show_default=False
    ),
]
NoTimestampOption = Annotated[
    bool, typer.Option("--no-timestamp", help="Do not look the key's timestamp up on the chain.")
]
GasLimitOption = Annotated[
    int | None,
    typer.Option(
        "--gas-limit", help="Gas limit per transaction (default: estimated by the node).", show_default=False, min=21000
    ),
]


def chain_settings(
    rpc_url: str | None,
    registry: str | None,
    chain_id: int | None,
    confirmations: int = 1,
    keystore: Path | None = None,
    keystore_passphrase_file: Path | None = None,
    gas_limit: int | None = None,
) -> ChainSettings:
    try:
        from wmproof.chain import ChainSettings
        from wmproof.chain.node import account_from_environment, account_from_keystore
    except ImportError:
        raise UsageError("chains need the chain extra: pip install 'wmproof[chain]'") from None

    def account() -> Any:
        if keystore is not None:
            return account_from_keystore(
                keystore, passphrase_to_read(keystore_passphrase_file, str(keystore), "--keystore-passphrase-file")
            )
        return account_from_environment()

    return ChainSettings(
        rpc_url=rpc_url or None,
        registry=registry or None,
        chain_id=chain_id,
        confirmations=confirmations,
        account=account,
        gas_limit=gas_limit,
    )


def print_timestamp(ts: KeyTimestamp, *, label: str = "timestamp") -> None:
    from wmproof.protocol.timestamps import format_time

    r = ts.registration
    confirmations = f"{r.confirmations} confirmation" + ("s" if r.confirmations != 1 else "")
    stdout.print(f"{label:<12} {format_time(r.timestamp)}  (block {r.block_number}, {confirmations})")
    stdout.print(
        f"{'key':<12} {ts.verification_key.key_id.hex()[:16]}  (owner {ts.verification_key.owner.fingerprint})"
    )
    stdout.print(f"{'chain':<12} {r.chain_id}, registry {r.registry}  ({ts.network})")
    stdout.print(f"{'transaction':<12} 0x{r.transaction_hash.hex()}  (from {r.registrant})")
    if ts.batch is not None:
        stdout.print(f"{'batch':<12} leaf {ts.batch.index} of {ts.batch.size}, root {ts.batch.root.hex()[:16]}")
    else:
        stdout.print(f"{'digest':<12} {ts.anchor.hex()}")


def embedded_warning(embedded: bool) -> None:
    if embedded:
        from wmproof.chain import EMBEDDED_WARNING

        warn(EMBEDDED_WARNING)


# ------------------------------------------------------------------------------------------------ publish


@handle_errors
def publish_command(
    keys: Annotated[list[Path], typer.Argument(help="Verification keys (.wvk) to timestamp; several go in one batch.")],
    rpc_url: RpcUrlOption = None,
    registry: RegistryOption = None,
    chain_id: ChainIdOption = None,
    confirmations: ConfirmationsOption = 1,
    wait: Annotated[
        float,
        typer.Option("--wait", help="Seconds to wait for the --confirmations blocks to be mined.", min=0),
    ] = 600.0,
    keystore: KeystoreOption = None,
    keystore_passphrase_file: KeystorePassphraseOption = None,
    gas_limit: GasLimitOption = None,
    overwrite: OverwriteOption = False,
    as_json: JsonOption = False,
) -> None:
    """Timestamp verification keys on chain, and write each key's timestamp record next to it (KEY.wts).

    One key takes one transaction; several keys take one transaction together (the Merkle root of their
    digests), and each record keeps its key's inclusion path: keep the records with the keys. A key whose
    digest is already registered keeps its first timestamp. The records are written only after the chain
    shows the registration.

    Examples:

        wmproof publish key.wvk                                  # embedded chain (a local notebook)

        WMPROOF_RPC_URL=https://node.example WMPROOF_REGISTRY=0x... wmproof publish a.wvk b.wvk --keystore me.json
    """
    from wmproof.chain import open_registry
    from wmproof.protocol import load_verification_key
    from wmproof.protocol.timestamps import format_time, publish, save_record

    vks = [load_verification_key(path) for path in keys]
    records = [path.with_suffix(RECORD_SUFFIX) for path in keys]
    check_outputs(*records, overwrite=overwrite)
    settings = chain_settings(rpc_url, registry, chain_id, confirmations, keystore, keystore_passphrase_file, gas_limit)
    try:
        with open_registry(settings, write=True) as client:
            if confirmations > 1:
                note(f"waiting for {confirmations} confirmations (up to {wait:g} s)")
            results = publish(vks, client, wait=wait)
    except KeyboardInterrupt:
        if settings.embedded:
            raise  # the embedded chain rolls back: nothing was written
        raise Interrupted(
            "interrupted: no record was written, but a transaction may have been sent; "
            "`wmproof timestamp` will show whether it was mined"
        ) from None
    for result, path in zip(results, records, strict=True):
        save_record(result.timestamp.record(), path, overwrite=overwrite)
    data = {
        "keys": [
            {**r.timestamp.as_dict(), "already_registered": r.already, "record": str(p)}
            for r, p in zip(results, records, strict=True)
        ]
    }

    def human() -> None:
        for result, path, key in zip(results, records, keys, strict=True):
            stdout.print(f"[bold]{key}[/]", markup=True, highlight=False)
            print_timestamp(result.timestamp, label="registered" if not result.already else "already")
            stdout.print(f"{'record':<12} {path}")

    emit(data, as_json, human)
    for result, key in zip(results, keys, strict=True):
        if result.already:
            note(
                f"{key}: already registered on {format_time(result.timestamp.timestamp)}; the first registration stands"
            )
    embedded_warning(results[0].timestamp.embedded)


# ---------------------------------------------------------------------------------------------- timestamp


@handle_errors
def timestamp_command(
    key: Annotated[Path, typer.Argument(help="The verification key (.wvk) to look up.")],
    record: RecordOption = None,
    rpc_url: RpcUrlOption = None,
    registry: RegistryOption = None,
    chain_id: ChainIdOption = None,
    confirmations: ConfirmationsOption = 1,
    as_json: JsonOption = False,
) -> None:
    """Look up when a verification key was timestamped, checked against the key, the chain and the record.

    Exit code 0: timestamped; 1: the chain has no timestamp for this key; 2-5: could not tell.

    Examples:

        wmproof timestamp key.wvk

        wmproof timestamp key.wvk --record key.wts --rpc-url http://127.0.0.1:8545 --registry 0x...
    """
    from wmproof.protocol import load_verification_key

    settings = chain_settings(rpc_url, registry, chain_id, confirmations)
    found, settings = lookup(load_verification_key(key), record, settings)
    if found is None:
        data = {"key": str(key), "timestamped": False, "network": settings.describe()}
        emit(data, as_json, lambda: stdout.print(f"no timestamp for {key} on the {settings.describe()}"))
        if record is None:
            note("a key published in a batch is found through its record: give --record KEY.wts")
        embedded_warning(settings.embedded)
        raise typer.Exit(int(ExitCode.REJECTED))
    emit({"key": str(key), "timestamped": True, **found.as_dict()}, as_json, lambda: print_timestamp(found))
    embedded_warning(found.embedded)


def lookup(
    vk: VerificationKey, record_path: Path | None, settings: ChainSettings
) -> tuple[KeyTimestamp | None, ChainSettings]:
    """Find a key's timestamp. A record with no --registry/--chain-id given fills them in (then checked)."""
    import dataclasses

    from wmproof.chain import open_registry
    from wmproof.protocol.timestamps import find_timestamp, load_record

    record = load_record(record_path) if record_path is not None else None
    if record is not None and not settings.embedded:
        settings = dataclasses.replace(
            settings,
            registry=settings.registry or "0x" + record.registry.hex(),
            chain_id=settings.chain_id or record.chain_id,
        )
    with open_registry(settings, write=False) as client:
        return find_timestamp(vk, client, record, str(record_path)), settings


def key_timestamp(
    vk: VerificationKey,
    record: Path | None,
    skip: bool,
    rpc_url: str | None,
    registry: str | None,
    chain_id: int | None,
    confirmations: int,
) -> tuple[dict[str, Any], KeyTimestamp | None]:
    """The key's timestamp for a verification report (verify, check): found, absent, or why it could not be
    read. Never fails the command: the verdict is about the model, the timestamp about when the key existed."""
    beacon = vk.beacon is not None  # then the key itself is only valid once its beacon is checked on chain
    if skip:
        if beacon:
            raise UsageError(
                "this key's challenge was drawn from a chain beacon: it needs the chain, not --no-timestamp"
            )
        return {"status": "skipped"}, None
    try:
        settings = chain_settings(rpc_url, registry, chain_id, confirmations)
        found, settings = lookup(vk, record, settings)
    except WmproofError as exc:
        if beacon:
            error = type(exc)(f"the key's challenge was drawn from a chain beacon that could not be checked: {exc}")
            raise error from None
        warn(f"could not read the key's timestamp: {exc}")
        return {"status": "unavailable", "reason": str(exc)}, None
    if found is None:
        warn(f"the key has no timestamp on the {settings.describe()}: nothing shows it existed before today")
        return {"status": "absent", "network": settings.describe()}, None
    return {"status": "found", **found.as_dict()}, found


# -------------------------------------------------------------------------------------------------- chain

app = typer.Typer(
    help="The registry contract on a node: deploy it, show where things are.",
    no_args_is_help=True,
    rich_markup_mode="markdown",
)


@app.command("deploy")
@handle_errors
def deploy(
    rpc_url: RpcUrlOption = None,
    chain_id: ChainIdOption = None,
    keystore: KeystoreOption = None,
    keystore_passphrase_file: KeystorePassphraseOption = None,
    gas_limit: GasLimitOption = None,
    as_json: JsonOption = False,
) -> None:
    """Deploy the wmproof registry (the committed, reproducible build) on a node; print its address.

    Example:

        WMPROOF_ETH_PRIVATE_KEY=... wmproof chain deploy --rpc-url http://127.0.0.1:8545
    """
    from wmproof.chain import deploy_on_node

    if not rpc_url:
        raise UsageError("the embedded chain deploys its own registry: `wmproof chain deploy` needs --rpc-url")
    settings = chain_settings(rpc_url, None, chain_id, 1, keystore, keystore_passphrase_file, gas_limit)
    address, found_chain_id = deploy_on_node(settings)
    emit(
        {"registry": address, "chain_id": found_chain_id, "network": settings.describe()},
        as_json,
        lambda: stdout.print(f"registry {address} on chain {found_chain_id}: export WMPROOF_REGISTRY={address}"),
    )


@app.command("keystore")
@handle_errors
def keystore_command(
    out: Annotated[Path, typer.Option("--out", "-o", help="Where to write the keystore (mode 0600).")],
    private_key_file: Annotated[
        Path | None,
        typer.Option(
            "--private-key-file",
            help="Import this account: a file holding its hex private key ('-': stdin). Without it, a new "
            "random account is made (fund it before publishing).",
            show_default=False,
        ),
    ] = None,
    passphrase_file: Annotated[
        Path | None,
        typer.Option(
            "--passphrase-file",
            help="The keystore's new passphrase, from a file ('-': stdin); without it you are asked on a terminal.",
            show_default=False,
        ),
    ] = None,
    overwrite: OverwriteOption = False,
    as_json: JsonOption = False,
) -> None:
    """Write an Ethereum keystore file (encrypted JSON, Web3 Secret Storage v3) for `--keystore`.

    The account pays for `wmproof chain deploy` and `wmproof publish` on a node. Its private key is read
    from a file, never from the command line, and is only ever stored encrypted.

    Examples:

        wmproof chain keystore --out me.json --passphrase-file pass.txt

        wmproof chain keystore --out me.json --private-key-file dev-key.txt --passphrase-file pass.txt
    """
    from wmproof.chain.node import keystore_bytes
    from wmproof.fileio import read_file, write_file

    from .common import passphrase_to_write

    check_outputs(out, overwrite=overwrite)
    if str(private_key_file) == "-" and str(passphrase_file) == "-":
        raise UsageError("the private key and the passphrase cannot both come from stdin")
    if passphrase_file is None and not (sys.stdin.isatty() and sys.stderr.isatty()):
        raise UsageError("the keystore is encrypted: give its new passphrase with --passphrase-file FILE")
    private_key = None
    if private_key_file is not None:
        raw = (
            typer.get_text_stream("stdin").readline().encode()
            if str(private_key_file) == "-"
            else read_file(private_key_file, "a private key file", max_size=1024)
        )
        private_key = raw.decode("ascii", errors="replace").strip()
    passphrase = passphrase_to_write(passphrase_file, False, "the keystore")
    data, address = keystore_bytes(private_key, passphrase or b"")
    write_file(out, data, secret=True, overwrite=overwrite)
    emit(
        {"keystore": str(out), "address": address},
        as_json,
        lambda: stdout.print(f"keystore {out} for account {address} (encrypted; keep the passphrase)"),
    )


@app.command("info")
@handle_errors
def info(
    rpc_url: RpcUrlOption = None,
    registry: RegistryOption = None,
    chain_id: ChainIdOption = None,
    as_json: JsonOption = False,
) -> None:
    """Show the chain in use: chain id, registry (its code checked), head block.

    Example:

        wmproof chain info
    """
    from wmproof.chain import open_registry
    from wmproof.chain.contract import registry_artifact
    from wmproof.chain.registry import chain_errors

    settings = chain_settings(rpc_url, registry, chain_id)
    with open_registry(settings, write=False) as client:
        with chain_errors("reading the head block"):
            head = int(client.web3.eth.block_number)
        data = {
            "network": client.network,
            "embedded": client.embedded,
            "chain_id": client.chain_id,
            "registry": client.address,
            "head_block": head,
            "compiler": registry_artifact().compiler,
        }

    def human() -> None:
        for name in ("network", "chain_id", "registry", "head_block", "compiler"):
            stdout.print(f"{name.replace('_', ' '):<12} {data[name]}", highlight=False)

    emit(data, as_json, human)
    embedded_warning(settings.embedded)
