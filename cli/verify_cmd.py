"""``wmproof verify``: private verification by a judge who holds the marking key."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from wmproof.errors import ExitCode
from wmproof.protocol import (
    VerificationReport,
    load_marking_key,
    load_verification_key,
    verify_private,
)
from wmproof.stats import CertaintyTest, format_probability

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
    PassphraseFileOption,
    TrustModuleOption,
    emit,
    handle_errors,
    passphrase_to_read,
    stdout,
    trust_modules,
)
from .suspect import (
    EvidenceOption,
    IdentityOption,
    IdentityPassphraseOption,
    MaxQueriesOption,
    ModelNameOption,
    UrlOption,
    open_suspect,
    prepare_evidence,
    write_evidence,
)


def print_report(report: VerificationReport) -> None:
    t = report.test
    vk = report.verification_key
    verdict = "[bold green]VERIFIED[/]" if report.verified else "[bold red]NOT VERIFIED[/]"
    stdout.print(f"verdict      {verdict}", markup=True)
    if isinstance(t, CertaintyTest):
        target = round(t.target_rate * t.n)
        baseline = "the items without the trigger" if t.paired else "1/|Y|"
        stdout.print(f"target class {target} of {t.n} items answered with it (watermark accuracy {t.target_rate:.1%})")
        stdout.print(
            f"probability  mean {t.mean_target_probability:.4f} on the items, {t.mean_baseline:.4f} baseline "
            f"({baseline}); certainty {t.certainty:g}"
        )
        stdout.print(
            f"p-value      {t.p_value:.3e}  (one-sided Wilcoxon signed-rank, H0 p - q < {t.certainty:g}, "
            f"alpha = {format_probability(t.alpha)})"
        )
    else:
        stdout.print(f"matches      {t.matches} of {t.n} trigger items (needed >= {t.min_matches})")
        stdout.print(f"errors       {t.errors} of {t.n} (at most {t.errors_tolerated} tolerated)")
        stdout.print(
            f"p-value      {format_probability(t.p_value)}  (exact one-sided binomial, p0 = {t.p0}, "
            f"alpha = {format_probability(t.alpha)})"
        )
    stdout.print(f"key          {vk.key_id.hex()[:16]}  ({vk.scheme}, owner {vk.owner.fingerprint})")
    suspect = report.suspect
    if suspect.get("kind") == "remote-api":
        stdout.print(f"suspect      {suspect['url']} model {suspect['model_name']!r}  ({suspect['queries']} queries)")
    else:
        stdout.print(
            f"suspect      {suspect.get('path')}  ({suspect.get('architecture')}, "
            f"sha256 {suspect.get('sha256', '')[:16]})"
        )


@handle_errors
def verify_command(
    key: Annotated[
        Path, typer.Option("--key", "-k", help="The owner's marking key (given to the judge in confidence).")
    ],
    vk: Annotated[Path, typer.Option("--vk", help="The owner's published verification key.")],
    model: Annotated[
        Path | None, typer.Option("--model", "-m", help="The suspect model file (or --url).", show_default=False)
    ] = None,
    url: UrlOption = None,
    model_name: ModelNameOption = None,
    max_queries: MaxQueriesOption = None,
    evidence: EvidenceOption = None,
    identity: IdentityOption = None,
    identity_passphrase_file: IdentityPassphraseOption = None,
    passphrase_file: PassphraseFileOption = None,
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
    """Verify privately whether a suspect model carries the watermark of a key.

    Checks the verification key's signature, that every marking-key item opens its commitment under the
    signed Merkle root, then queries the suspect on the items and decides with the key's rule: an exact
    binomial test on labels, or for feature-sharing, plain and ewe keys a Wilcoxon test on probabilities.
    Then reports when the key was timestamped on chain (embedded chain unless --rpc-url), or warns that it
    was not. Exit code 0: verified; 1: not verified; 2-5: the verification could not be carried out.

    A suspect behind a prediction API is queried with --url and --model-name (Open Inference Protocol),
    with retries, a query budget, and optionally a signed transcript of every query (--evidence).

    Examples:

        wmproof verify --key key.wmk --vk key.wvk --model suspect.safetensors

        wmproof verify --key key.wmk --vk key.wvk --url http://127.0.0.1:8000 --model-name suspect \
            --evidence suspect.evidence.json --identity judge.wid
    """
    trust_modules(trust_module)
    prepare_evidence(evidence, url, identity)
    verification_key = load_verification_key(vk)
    marking_key = load_marking_key(key, passphrase_to_read(passphrase_file, str(key)))
    oracle, suspect_name = open_suspect(
        model, url, model_name, max_queries, device, input_shape=tuple(verification_key.input_shape)
    )
    report = verify_private(marking_key, verification_key, oracle, mk_name=str(key), suspect_name=suspect_name)
    write_evidence(evidence, oracle, report.as_dict(), identity, identity_passphrase_file)
    timestamp, found = key_timestamp(verification_key, record, no_timestamp, rpc_url, registry, chain_id, confirmations)

    def human() -> None:
        print_report(report)
        if found is not None:
            print_timestamp(found)

    emit({**report.as_dict(), "timestamp": timestamp}, as_json, human)
    if found is not None:
        embedded_warning(found.embedded)
    raise typer.Exit(int(ExitCode.VERIFIED if report.verified else ExitCode.REJECTED))
