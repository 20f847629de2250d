"""``wmproof identity``: the owner's Ed25519 identity."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from wmproof.protocol import Identity, PublicIdentity, load_identity, read_public_identity, save_identity

from .common import (
    JsonOption,
    NoPassphraseOption,
    OverwriteOption,
    PassphraseFileOption,
    emit,
    handle_errors,
    note,
    passphrase_to_read,
    passphrase_to_write,
    stdout,
)

app = typer.Typer(
    help="Create and inspect owner identities (Ed25519 keys, sealed at rest).",
    no_args_is_help=True,
    rich_markup_mode="markdown",
)


@app.command("new")
@handle_errors
def new(
    out: Annotated[Path, typer.Option("--out", "-o", help="Where to write the identity (secret, mode 0600).")],
    label: Annotated[str, typer.Option("--label", help="A name to remember it by (stored in the clear).")] = "",
    passphrase_file: PassphraseFileOption = None,
    no_passphrase: NoPassphraseOption = False,
    overwrite: OverwriteOption = False,
    as_json: JsonOption = False,
) -> None:
    """Create a new owner identity.

    Example:

        wmproof identity new --out alice.wid --label "Alice Research" --passphrase-file pass.txt
    """
    passphrase = passphrase_to_write(passphrase_file, no_passphrase, "the identity")
    identity = Identity.generate(label)
    save_identity(identity, out, passphrase, overwrite=overwrite)
    data = {
        "path": str(out),
        "public_key": bytes(identity.public_key).hex(),
        "fingerprint": identity.public_key.fingerprint,
        "label": label,
        "encrypted": passphrase is not None,
    }
    if passphrase is None:
        note("the identity is stored unencrypted: anyone who reads the file can sign as you")

    def human() -> None:
        stdout.print(f"identity   {out}")
        stdout.print(f"fingerprint {identity.public_key.fingerprint}")
        stdout.print(f"public key {bytes(identity.public_key).hex()}")

    emit(data, as_json, human)


@app.command("show")
@handle_errors
def show(
    path: Annotated[Path, typer.Argument(help="An identity file.")],
    passphrase_file: PassphraseFileOption = None,
    as_json: JsonOption = False,
) -> None:
    """Show an identity's public key and fingerprint, and whether they were authenticated.

    An encrypted identity's header (public key, label) is authenticated only when the identity is opened:
    with --passphrase-file the file is opened and its public key checked against its secret key; without it,
    the output says the header is not authenticated (a file whose header was replaced shows someone else's
    key). An unencrypted identity is always checked, since its secret key is in the clear.

    Examples:

        wmproof identity show alice.wid --passphrase-file pass.txt

        wmproof identity show alice.wid --json
    """
    public = read_public_identity(path)
    authenticated = False
    if passphrase_file is not None or not public.encrypted:
        opened = load_identity(path, passphrase_to_read(passphrase_file, str(path)))
        public = PublicIdentity(opened.public_key, opened.label, public.encrypted)
        authenticated = True
    data = {
        "path": str(path),
        "public_key": bytes(public.public_key).hex(),
        "fingerprint": public.public_key.fingerprint,
        "label": public.label,
        "encrypted": public.encrypted,
        "authenticated": authenticated,
    }

    def human() -> None:
        stdout.print(f"identity    {path}" + (f"  ({public.label})" if public.label else ""), highlight=False)
        stdout.print(f"fingerprint {public.public_key.fingerprint}")
        stdout.print(f"public key  {bytes(public.public_key).hex()}")
        stdout.print(f"encrypted   {'yes' if public.encrypted else 'NO'}")
        stdout.print(
            "checked     yes: the public key matches the secret key"
            if authenticated
            else "checked     NO: read from the header without the passphrase (--passphrase-file checks it)"
        )

    emit(data, as_json, human)
