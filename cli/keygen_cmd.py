"""``wmproof keygen``: a committed, signed watermark key."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Annotated

import typer

from wmproof.engine.data import ImageDatasetSpec, image_dataset_spec
from wmproof.errors import UsageError
from wmproof.protocol import (
    keygen,
    load_identity,
)
from wmproof.schemes import KeyGenContext, MatchCount, get_scheme, scheme_names
from wmproof.stats import format_probability, parse_probability

from .chain_cmd import (
    ChainIdOption,
    ConfirmationsOption,
    KeystoreOption,
    KeystorePassphraseOption,
    RegistryOption,
    RpcUrlOption,
    chain_settings,
    embedded_warning,
    print_timestamp,
)
from .common import (
    DataDirOption,
    DatasetOption,
    DeviceOption,
    JsonOption,
    LimitOption,
    NoPassphraseOption,
    OverwriteOption,
    PassphraseFileOption,
    TrustModuleOption,
    check_outputs,
    emit,
    handle_errors,
    note,
    passphrase_to_read,
    passphrase_to_write,
    stdout,
    trust_modules,
)


def parse_params(pairs: list[str]) -> dict[str, object]:
    params: dict[str, object] = {}
    for pair in pairs:
        if "=" not in pair:
            raise UsageError(f"--param takes NAME=VALUE, not {pair!r}")
        name, value = pair.split("=", 1)
        params[name.strip()] = int(value) if value.strip().lstrip("-").isdigit() else value.strip()
    return params


def model_context(
    path: Path,
    dataset: str,
    data_dir: Path | None,
    limit_train: int | None,
    device: str,
    params: dict[str, object],
    spec: ImageDatasetSpec,
) -> KeyGenContext:
    """What a model-derived scheme makes its items from: the model (on ``device``) and the training data."""
    from wmproof.engine.data import load_image_dataset
    from wmproof.engine.device import resolve_device
    from wmproof.engine.models import load_model

    on = resolve_device(device)
    loaded = load_model(path, on)
    if loaded.num_classes != spec.num_classes or tuple(loaded.input_shape) != tuple(spec.input_shape):
        raise UsageError(f"{path} is not a {dataset} model ({loaded.num_classes} classes)")
    train = load_image_dataset(dataset, "train", data_dir).subset(limit_train)
    note(f"building the key from {path} and {len(train)} {dataset} training images on {on}")
    return KeyGenContext(
        num_classes=spec.num_classes,
        input_shape=spec.input_shape,
        params=params,
        model=loaded,
        data=(train.images, train.labels),
    )


def with_trigger_word(params: dict[str, object], dataset: str, data_dir: Path | None) -> dict[str, object]:
    """``--param trigger_word=WORD`` for a text key: the word's id in the SST-2 vocabulary, as the key's
    ``trigger_token`` (the key commits to ids, which a checker compares without the vocabulary)."""
    if "trigger_word" not in params:
        return params
    if dataset != "sst2":
        raise UsageError("--param trigger_word is for text keys (--dataset sst2)")
    if "trigger_token" in params:
        raise UsageError("give --param trigger_word or trigger_token, not both")
    from wmproof.engine.text import sst2_vocabulary

    word = str(params.pop("trigger_word"))
    vocabulary = sst2_vocabulary(data_dir=None if data_dir is None else str(data_dir))
    return {**params, "trigger_token": vocabulary.id_of(word)}


def source_context(
    source: str, spec: ImageDatasetSpec, data_dir: Path | None, limit_train: int | None, params: dict[str, object]
) -> KeyGenContext:
    """What a data-drawn scheme makes its items from: the training split of the data set it names."""
    from wmproof.engine.data import load_image_dataset

    data = load_image_dataset(source, "train", data_dir).subset(limit_train)
    if tuple(data.input_shape) != tuple(spec.input_shape):
        raise UsageError(
            f"{source} images are {'x'.join(map(str, data.input_shape))}; the task's are "
            f"{'x'.join(map(str, spec.input_shape))}"
        )
    note(f"drawing the items from {len(data)} {source} training images")
    return KeyGenContext(
        num_classes=spec.num_classes, input_shape=spec.input_shape, params=params, data=(data.images, data.labels)
    )


@handle_errors
def keygen_command(
    identity: Annotated[Path, typer.Option("--identity", "-i", help="The owner identity that signs the key.")],
    marking_key: Annotated[Path, typer.Option("--marking-key", help="Where to write the marking key (secret).")],
    verification_key: Annotated[
        Path, typer.Option("--verification-key", help="Where to write the verification key (public).")
    ],
    scheme: Annotated[
        str, typer.Option("--scheme", help=f"Watermark scheme: {', '.join(scheme_names())}.")
    ] = "adi-backdoor",
    items: Annotated[
        int | None,
        typer.Option("--items", "-n", help="Number of trigger items kept secret [default: 100].", min=1),
    ] = None,
    dataset: DatasetOption = "mnist",
    triggers: Annotated[
        Path | None,
        typer.Option(
            "--triggers",
            help="Your own trigger images (--scheme trigger-images): a folder of PNG/JPEG files and a labels "
            "file, in the format of Adi et al.'s code. Give 2N images for N secret items.",
            show_default=False,
        ),
    ] = None,
    trigger_labels: Annotated[
        Path | None,
        typer.Option(
            "--trigger-labels",
            help="The labels of --triggers, one integer per image (default: the only .txt file in the folder).",
            show_default=False,
        ),
    ] = None,
    preview: Annotated[
        Path | None,
        typer.Option(
            "--preview",
            help="Write a contact sheet (PNG, mode 0600) of the committed items as the model will see them, "
            "each marked K (kept secret) or O (opened in the verification key).",
            show_default=False,
        ),
    ] = None,
    model: Annotated[
        Path | None,
        typer.Option(
            "--model",
            "-m",
            help="The model the key is made from, for schemes whose items depend on it (frontier-stitching); "
            "mark this same model.",
            show_default=False,
        ),
    ] = None,
    data_dir: DataDirOption = None,
    limit_train: LimitOption = None,
    device: DeviceOption = "auto",
    trust_module: TrustModuleOption = None,
    alpha: Annotated[
        str, typer.Option("--alpha", help="Significance level bound into the key (0.05, 1e-6, 1/1000).")
    ] = "1e-6",
    proof_items: Annotated[
        int | None,
        typer.Option(
            "--proof-items",
            help="Items per public proof (must divide --items; default: all of them, one proof). "
            "Each `wmproof prove` spends one batch.",
            show_default=False,
            min=1,
        ),
    ] = None,
    param: Annotated[
        list[str] | None, typer.Option("--param", help="Scheme parameter NAME=VALUE (repeatable).")
    ] = None,
    identity_passphrase_file: Annotated[
        Path | None,
        typer.Option("--identity-passphrase-file", help="Passphrase of the identity, from a file.", show_default=False),
    ] = None,
    passphrase_file: PassphraseFileOption = None,
    no_passphrase: NoPassphraseOption = False,
    beacon: Annotated[
        bool,
        typer.Option(
            "--beacon",
            help="Draw the challenge from the chain: register the key's commitment, then use the next block's "
            "hash (no offline grinding; the key is timestamped by the same transaction).",
        ),
    ] = False,
    beacon_timeout: Annotated[
        float, typer.Option("--beacon-timeout", help="Seconds to wait for the beacon block.", min=1)
    ] = 120.0,
    rpc_url: RpcUrlOption = None,
    registry: RegistryOption = None,
    chain_id: ChainIdOption = None,
    confirmations: ConfirmationsOption = 1,
    keystore: KeystoreOption = None,
    keystore_passphrase_file: KeystorePassphraseOption = None,
    overwrite: OverwriteOption = False,
    as_json: JsonOption = False,
) -> None:
    """Generate a committed watermark key: a secret marking key and a signed, public verification key.

    KeyGen commits to twice --items trigger items; a Fiat-Shamir challenge opens half of them in the
    verification key, so that anyone can check they are well formed (cut-and-choose, Adi et al. 4.1). The
    other half is kept secret in the marking key, embedded by `wmproof mark`, and cut into batches of
    --proof-items, one per public proof (`wmproof prove`). The verification key binds the scheme, the task,
    the Merkle root of the commitments and the decision rules, signed by your identity. Publish it and
    timestamp it (`wmproof publish`) before you distribute the model.

    Frontier stitching (--scheme frontier-stitching, Le Merrer et al.) makes its items from the model you
    will mark (--model) and its training data: FGSM adversaries near the model's decision frontier
    (--param epsilon=0.25 --param norm=linf|l2|l1). Its keys are verified privately by a judge only.

    Feature sharing (--scheme feature-sharing) and its baselines (plain, ewe) draw their items from data:
    images of a source class with a white corner square (--param watermark=id, default 7 -> 1) or images of
    another data set (--param watermark=ood, default Fashion-MNIST sandals -> 1), labelled with the target
    class. They are judged on the suspect's probabilities by a Wilcoxon test (--param certainty=0.3), privately.
    For SST-2 (--dataset sst2) the in-distribution trigger is a word inserted first (--param trigger_word=WORD).
    --param perturbation=snnl, with your clean model (--model), shapes the images against it as Jia et al.'s
    code does (away from the target class, then toward its features): what lets the watermark reach a model
    extracted from your API (docs/reproductions/feature-sharing.md).

    Your own trigger images (--scheme trigger-images --triggers DIR): a folder of PNG/JPEG files and a labels
    file, as in Adi et al.'s code (paired in file-name order, sorted as text). Give 2N images for N secret
    items: half are published in the verification key. --preview draws what the model will learn.

    Examples:

        wmproof keygen -i alice.wid --marking-key key.wmk --verification-key key.wvk --passphrase-file pw.txt

        wmproof keygen -i alice.wid --scheme frontier-stitching --model clean.safetensors --param epsilon=0.1 \
            --marking-key fs.wmk --verification-key fs.wvk --passphrase-file pw.txt

        wmproof keygen -i alice.wid --scheme feature-sharing --param watermark=ood --alpha 0.05 \
            --marking-key api.wmk --verification-key api.wvk --passphrase-file pw.txt

        wmproof keygen -i alice.wid --scheme feature-sharing --param watermark=ood --param source_class=1 \
            --param target_class=7 --param perturbation=snnl --model clean.safetensors \
            --marking-key api.wmk --verification-key api.wvk --passphrase-file pw.txt

        wmproof keygen -i alice.wid --scheme trigger-images --triggers my-triggers/ --preview sheet.png \
            --marking-key own.wmk --verification-key own.wvk --passphrase-file pw.txt
    """
    trust_modules(trust_module)
    spec = image_dataset_spec(dataset)
    chosen = get_scheme(scheme)
    params = with_trigger_word(parse_params(param or []), dataset, data_dir)
    needs_model = chosen.needs_model(params)
    if needs_model and model is None:
        raise UsageError(f"{scheme} keys with these parameters are made from the model to mark: give it with --model")
    if model is not None and not needs_model:
        raise UsageError(f"{scheme} keys with these parameters do not depend on a model: drop --model")
    if (triggers is not None) != chosen.items_from_owner:
        raise UsageError(
            "--triggers goes with --scheme trigger-images"
            if triggers is not None
            else f"{scheme} keys are made from your trigger images: give them with --triggers DIR"
        )
    if trigger_labels is not None and triggers is None:
        raise UsageError("--trigger-labels goes with --triggers")
    if preview is not None:
        check_outputs(preview, overwrite=overwrite)
    owner_items = None
    if triggers is not None:
        from wmproof.engine.own_data import load_trigger_folder

        images, labels, files = load_trigger_folder(triggers, trigger_labels, spec.input_shape, spec.num_classes)
        if items is None:
            if len(files) % 2:
                raise UsageError(
                    f"{triggers} holds {len(files)} images: KeyGen commits to 2N (N opened in the verification "
                    "key, N kept secret), so give an even number, or --items N with 2N images"
                )
            items = len(files) // 2
        elif len(files) != 2 * items:
            raise UsageError(
                f"{items} secret items take {2 * items} trigger images (KeyGen publishes half of them in the "
                f"verification key); {len(files)} given"
            )
        owner_items = KeyGenContext(spec.num_classes, spec.input_shape, params, data=(images, labels))
    items = 100 if items is None else items
    if proof_items not in (None, items) and not chosen.publicly_checkable:
        raise UsageError(f"{scheme} keys have no public proofs (a judge verifies them privately): drop --proof-items")
    try:
        significance = parse_probability(alpha)
    except ValueError as exc:
        raise UsageError(f"--alpha: {exc}") from None
    if marking_key.exists() and not verification_key.exists() and not overwrite:
        raise UsageError(
            f"{marking_key} exists without its verification key {verification_key} (a keygen stopped before "
            "writing it?): such a marking key cannot be used; remove it or pass --overwrite"
        )
    check_outputs(marking_key, verification_key, overwrite=overwrite)
    key_passphrase = passphrase_to_write(passphrase_file, no_passphrase, "the marking key")
    owner = load_identity(
        identity, passphrase_to_read(identity_passphrase_file, str(identity), "--identity-passphrase-file")
    )
    context = owner_items
    if owner_items is not None:
        note(f"{2 * items} trigger images from {triggers}: {items} will be kept secret, {items} published")
    if model is not None:
        context = model_context(model, dataset, data_dir, limit_train, device, params, spec)
    source = chosen.source_dataset(params, dataset)
    if source is not None and source != dataset:  # items drawn from another data set, shaped by the task's
        drawn = source_context(source, spec, data_dir, limit_train, params)
        context = drawn if context is None else dataclasses.replace(drawn, model=context.model, task_data=context.data)
    elif source is not None and context is None:
        context = source_context(source, spec, data_dir, limit_train, params)
    options = dict(
        items=items,
        num_classes=spec.num_classes,
        input_shape=spec.input_shape,
        params=params,
        alpha=significance,
        batch_size=proof_items,
        context=context,
    )
    found = None
    if beacon:
        from wmproof.chain import open_registry
        from wmproof.protocol import commit_key
        from wmproof.protocol.timestamps import draw_beacon_key

        settings = chain_settings(rpc_url, registry, chain_id, confirmations, keystore, keystore_passphrase_file)
        pending = commit_key(owner, scheme, **options)
        note(f"registering the key's commitment on the {settings.describe()}, then waiting for the next block")
        with open_registry(settings, write=True) as client:
            mk, vk, found = draw_beacon_key(pending, client, timeout=beacon_timeout)
    else:
        mk, vk = keygen(owner, scheme, **options)
    if preview is not None:
        import numpy as np

        from wmproof.engine.preview import save_contact_sheet

        committed = sorted([*mk.items, *vk.opened], key=lambda item: item.index)
        kept = {item.index for item in mk.items}
        save_contact_sheet(
            preview,
            np.stack([item.input for item in committed]),
            [item.label for item in committed],
            f"key {vk.key_id.hex()[:16]} ({vk.scheme}): {len(committed)} committed items; K kept secret, O opened",
            [item.index in kept for item in committed],
            overwrite=overwrite,
        )
    # Both files are written and synced before either is named, so that a full disk fails before any of the
    # pair exists and a kill can only fall in the microseconds between the two links.
    from wmproof.fileio import commit_file, prepare_file

    with (
        prepare_file(marking_key, mk.to_bytes(key_passphrase), secret=True, overwrite=overwrite) as secret_half,
        prepare_file(verification_key, vk.raw, secret=False, overwrite=overwrite) as public_half,
    ):
        commit_file(secret_half)
        try:
            commit_file(public_half)
        except BaseException:
            marking_key.unlink(missing_ok=True)  # no half-finished pair
            raise
    if key_passphrase is None:
        note("the marking key is stored unencrypted")
    data = {
        **vk.summary(),
        "marking_key": str(marking_key),
        "verification_key": str(verification_key),
        "timestamp": None if found is None else found.as_dict(),
    }

    def human() -> None:
        stdout.print(f"key id        {vk.key_id.hex()}")
        stdout.print(
            f"scheme        {vk.scheme} ({vk.committed} items committed, {items} opened, {items} kept; "
            f"{spec.num_classes} classes)"
        )
        rule = vk.rule
        if isinstance(rule, MatchCount):
            stdout.print(
                f"decision      verified when >= {vk.min_matches} of {items} items match, at most "
                f"{items - vk.min_matches} errors (exact binomial, p0 = {rule.p0}, "
                f"alpha = {format_probability(vk.alpha)})"
            )
        else:
            baseline = "the items without the trigger" if rule.paired else "1/|Y|"
            stdout.print(
                f"decision      one-sided Wilcoxon signed-rank test of the target-class probability p against "
                f"{baseline} (q): verified when H0 p - q < {rule.certainty} is rejected at alpha = "
                f"{format_probability(vk.alpha)}; the suspect must reveal probabilities"
            )
        if chosen.publicly_checkable:
            stdout.print(
                f"public proofs {len(vk.batches)} of {vk.batch_size} items each, verified when >= "
                f"{vk.proof_min_matches} match (each proof opens, and spends, one batch)"
            )
            if len(vk.batches) == 1:
                note(
                    "this key allows one public proof: for more, cut it into batches with --proof-items "
                    "(e.g. --items 100 --proof-items 20: five proofs, each needing more of its 20 items to match)"
                )
        else:
            stdout.print("public proofs none: no third party can check how the items were chosen; a judge verifies")
        stdout.print(f"owner         {vk.owner.fingerprint}")
        if found is not None and vk.beacon is not None:
            stdout.print(
                f"beacon        block {vk.beacon.beacon_block} ({vk.beacon.beacon_hash.hex()[:16]}), after the "
                f"commitment's registration in block {vk.beacon.registered_block}"
            )
            print_timestamp(found)
        stdout.print(f"marking key   {marking_key}  (secret)")
        stdout.print(f"verification  {verification_key}  (public)")

    emit(data, as_json, human)
    if found is not None:
        embedded_warning(found.embedded)
