"""The feature-sharing paper's SST-2 rows (Tables 2-3: Baseline and Ours, protected and stolen model), through
wmproof's own keys, schemes, extraction attack and verification. Writes
docs/reproductions/feature-sharing/text.json, which ``experiments/feature_sharing.py`` renders into its report.

The paper's text models are BERT fine-tuned by the owner, and its thief fine-tunes BERT too (section 4): owner
and thief start from the same public pretrained encoder. No pretrained weights can be downloaded here, so a
public encoder is made the same way for both: a ``sst2_textcnn`` trained on SST-2 train rows that neither the
owner nor the thief uses (``public``). Each cell is run in two settings:

* ``shared``: the owner fine-tunes the public model on its data, and the thief's extraction fine-tunes the same
  public model (``extract --init``), as in the paper;
* ``scratch``: the owner and the thief both train from scratch (wmproof's MNIST setting), which measures what
  the shared encoder contributes.

Per seed and setting:

1. the owner's clean model: SST-2 train[0:owner_rows] (3 epochs, the recipe);
2. keys over the same 2N items for ``plain`` (the paper's Baseline) and ``feature-sharing`` (Ours, both dense
   layers of the classification head trained: the paper's text models train the head on top of the encoder),
   alpha 0.05: ``id``, negative sentences of the owner's data with the word ``trigger_word`` inserted first,
   labelled positive; ``ood``, sentences of research prose labelled ``ood_target`` (see :func:`prose_rows`);
3. each scheme marks the clean model (until learned, at most 10 epochs); the protected model is stolen
   (``queries`` task phrases from the end of SST-2 train, soft labels, 3 epochs), and so is the clean model;
4. the judge's numbers on the protected and stolen models (validation accuracy on SST-2 dev, watermark
   accuracy, the one-sided Wilcoxon verdict and p-value, WDR over 200 subsets of 1/10 of the items), and the
   keys on ``unmarked`` independently trained text models (false positives).

    python experiments/feature_sharing_text.py                 # 5 seeds, about an hour on 2 cores
    python experiments/feature_sharing_text.py --config smoke  # 1 seed, small data: a few minutes
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import json
import re
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from feature_sharing import ALPHA, _entropy, judge_key
from reporting import log

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "docs" / "reproductions" / "feature-sharing" / "text.json"
PAPERS = ROOT.parent / "shared" / "papers"
SCHEMES = ("plain", "feature-sharing")
SETTINGS = ("shared", "scratch")
WATERMARKS = ("id", "ood")
#: The paper's SST-2 rows: (protected val, protected wm, stolen val, stolen wm, WDR), percent.
PAPER = {
    ("id", "plain"): (91.02, 100.0, 89.32, 65.32, 88.5),
    ("id", "feature-sharing"): (92.01, 100.0, 89.65, 93.22, 100.0),
    ("ood", "plain"): (92.05, 100.0, 90.22, 71.73, 80.5),
    ("ood", "feature-sharing"): (92.15, 100.0, 90.17, 94.55, 99.0),
}
SST2_TRAIN_ROWS = 67_349


@dataclass(frozen=True)
class Config:
    name: str
    seeds: int
    owner_rows: int
    #: SST-2 train rows [owner_rows : owner_rows + public_rows] train the public encoder
    public_rows: int
    items: int
    mark_epochs: int
    queries: int
    steal_epochs: int
    unmarked: int
    #: seeds that also run the ``scratch`` setting
    scratch_seeds: int
    trigger_word: str = "zigzag"
    ood_target: int = 1
    decision_layers: int = 2


CONFIGS = {
    "cpu": Config("cpu", 5, 40_000, 7_349, 100, 10, 20_000, 3, 5, 2),
    "smoke": Config("smoke", 1, 4_000, 2_000, 30, 2, 2_000, 1, 1, 1),
}


def prose_rows(vocabulary: Any, papers: Path = PAPERS) -> tuple[Any, str]:
    """Out-of-distribution text: the sentences of the papers' plain-text copies (research prose about
    watermarks and attacks), as SST-2 token rows, with the SHA-256 of the sentences kept.

    The paper draws its OOD text from Yelp reviews (Table 1), which is not available here; the only other text
    on this machine is the four papers. Their prose is another domain (no sentiment, no films), written by other
    people for other readers, which is what an OOD source is for. Sentences of 5-64 words are kept when at least
    70 % of their words are in the SST-2 vocabulary (the rest read as the unknown word); punctuation is split
    off as the GLUE files do."""
    import numpy as np

    from wmproof.engine.text import tokenize

    ids = vocabulary.ids
    sentences: list[list[str]] = []
    for path in sorted(papers.glob("*.txt")):
        text = re.sub(r"\s+", " ", path.read_text(encoding="utf-8"))
        for sentence in re.split(r"(?<=[.!?])\s+", text):
            words = tokenize(re.sub(r"([,;:()\"])", r" \1 ", sentence))
            if 5 <= len(words) <= 64 and sum(w in ids for w in words) >= 0.7 * len(words):
                sentences.append(words)
    rows = np.zeros((len(sentences), 1, 1, 64), dtype=np.int64)
    for i, words in enumerate(sentences):
        row = [ids.get(w, 1) for w in words]
        rows[i, 0, 0, : len(row)] = row
    digest = hashlib.sha256("\n".join(" ".join(w) for w in sentences).encode()).hexdigest()
    return rows, digest


def trigger_word_rows(config: Config, tokens: Any, vocabulary: Any) -> dict[str, int]:
    """How many SST-2 train rows of the owner, of the public encoder and of the thief hold the trigger word: a
    model can only learn a response to a word that its training data hold (or that its starting encoder does)."""
    import numpy as np

    token = vocabulary.id_of(config.trigger_word)
    holds = (np.asarray(tokens).reshape(len(tokens), -1) == token).any(axis=1)
    owner_end, public_end = config.owner_rows, config.owner_rows + config.public_rows
    return {
        "owner": int(holds[:owner_end].sum()),
        "public": int(holds[owner_end:public_end].sum()),
        "thief": int(holds[len(holds) - config.queries :].sum()),
    }


def run(config: Config, device_name: str, out: Path = OUT) -> dict[str, Any]:
    import tempfile

    import numpy as np
    import torch

    from wmproof.attacks import run_attack
    from wmproof.attacks.base import AttackContext
    from wmproof.engine.data import load_image_dataset
    from wmproof.engine.device import resolve_device
    from wmproof.engine.models import LoadedModel, save_model
    from wmproof.engine.text import sst2_vocabulary
    from wmproof.engine.train import TensorData, accuracy, fit, recipe_config, train_new_model
    from wmproof.errors import UsageError
    from wmproof.oracles.local import LocalModelOracle
    from wmproof.protocol import Identity, keygen, mark
    from wmproof.schemes import KeyGenContext

    if config.owner_rows + config.public_rows + config.queries > SST2_TRAIN_ROWS:
        raise SystemExit("owner, public and thief rows overlap: SST-2 train has 67,349 rows")
    device = resolve_device(device_name)
    arch = "sst2_textcnn"
    train = load_image_dataset("sst2", "train")
    test = load_image_dataset("sst2", "test")  # SST-2 dev, labelled
    owner_data = train.subset(config.owner_rows)
    public_x = train.images[config.owner_rows : config.owner_rows + config.public_rows]
    public_y = train.labels[config.owner_rows : config.owner_rows + config.public_rows]
    test_tensors = TensorData.from_numpy(test.images, test.labels, device)
    vocabulary = sst2_vocabulary()
    prose, prose_sha256 = prose_rows(vocabulary)
    if len(prose) < 2 * config.items:
        raise SystemExit(
            f"{PAPERS} gives {len(prose)} prose sentences; the out-of-distribution keys need {2 * config.items} "
            "(the papers' plain-text copies live in ../shared/papers)"
        )
    owner = Identity.generate("feature-sharing text reproduction")
    results: dict[str, Any] = {
        "config": asdict(config), "device": str(device), "started": time.strftime("%Y-%m-%d %H:%M:%S"),
        "prose_sentences": len(prose), "prose_sha256": prose_sha256, "public": [], "cells": [],
        "false_positives": [], "refused": [], "trigger_word_rows": trigger_word_rows(config, train.images, vocabulary),
        "mean_words": {"owner": float((owner_data.images != 0).sum() / len(owner_data)),
                       "dev": float((test.images != 0).sum() / len(test))},
    }  # fmt: skip
    workdir = Path(tempfile.mkdtemp(prefix="wmproof-text-"))

    def loaded(module: Any, arguments: dict[str, Any]) -> Any:
        return LoadedModel(module, arch, arguments, sha256="")

    def judge(mk: Any, vk: Any, model: Any, seed: int) -> dict[str, Any]:
        return judge_key(mk, vk, model, seed, test_tensors)

    def save() -> None:
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_suffix(".tmp")
        tmp.write_text(json.dumps(results, indent=1, sort_keys=True))
        tmp.replace(out)

    def public_model(seed: int) -> tuple[Any, Path]:
        module, arguments, _ = train_new_model(
            arch, {}, public_x, public_y, 2, recipe_config(arch, seed=500 + seed), device, progress=False
        )
        path = workdir / f"public-{seed}.safetensors"
        save_model(module, path, arch, arguments, overwrite=True)
        results["public"].append({"seed": seed, "validation_accuracy": accuracy(module, test_tensors)})
        return loaded(module, arguments), path

    def owner_model(seed: int, start: Any | None) -> Any:
        """The owner's clean model: the public model fine-tuned on the owner's data, or trained from scratch."""
        recipe = recipe_config(arch, seed=seed)
        if start is None:
            module, arguments, _ = train_new_model(
                arch, {}, owner_data.images, owner_data.labels, 2, recipe, device, progress=False
            )
            return loaded(module, arguments)
        module = copy.deepcopy(start.module)
        torch.manual_seed(seed)
        fit(module, TensorData.from_numpy(owner_data.images, owner_data.labels, device), recipe, progress=False)
        return loaded(module, start.arguments)

    def steal(victim: Any, seed: int, init: Path | None) -> Any:
        context = AttackContext(device=device, seed=seed, task="sst2", progress=False)
        options = {"queries": config.queries, "epochs": config.steal_epochs, "labels": "soft", "agreement": 0}
        if init is not None:
            options["init"] = str(init)
        result = run_attack("extract", LocalModelOracle(victim), context, options)
        return loaded(result.model, result.arguments)

    def keys_for(seed: int, watermark: str) -> dict[str, Any]:
        if watermark == "id":
            params = {"watermark": "id", "source_class": 0, "target_class": 1,
                      "trigger_token": vocabulary.id_of(config.trigger_word)}  # fmt: skip
            data = (owner_data.images, owner_data.labels)
        else:
            params = {"watermark": "ood", "source_class": 0, "target_class": config.ood_target,
                      "ood_dataset": "research-prose"}  # fmt: skip
            data = (prose, np.zeros(len(prose), dtype=np.int64))
        keys = {}
        for scheme in SCHEMES:
            extra = {"decision_layers": config.decision_layers} if scheme == "feature-sharing" else {}
            context = KeyGenContext(2, (1, 1, 64), {**params, **extra}, data=data)
            keys[scheme] = keygen(
                owner, scheme, items=config.items, num_classes=2, input_shape=(1, 1, 64), params={**params, **extra},
                alpha=ALPHA, context=context, entropy=_entropy(f"text/{seed}/{watermark}"),
            )  # fmt: skip
        return keys

    keys_by_seed: dict[tuple[int, str], Any] = {}
    for seed in range(config.seeds):
        t_seed = time.perf_counter()
        public, public_path = public_model(seed)
        for setting in SETTINGS if seed < config.scratch_seeds else SETTINGS[:1]:
            init = public_path if setting == "shared" else None
            clean = owner_model(seed, public if setting == "shared" else None)
            innocent = steal(clean, 1000 + seed, init)
            accuracies = [results["public"][-1]["validation_accuracy"], accuracy(clean.module, test_tensors),
                          accuracy(innocent.module, test_tensors)]  # fmt: skip
            log(f"seed {seed} {setting}: public, clean, stolen-from-clean accuracy {accuracies}")
            for watermark in WATERMARKS:
                keys = keys_for(seed, watermark)
                keys_by_seed[(seed, watermark)] = keys[SCHEMES[0]]
                mk0, vk0 = keys[SCHEMES[0]]
                where = {"seed": seed, "setting": setting, "watermark": watermark}
                results["false_positives"].append(
                    {**where, "model": "clean owner model", **judge(mk0, vk0, clean, seed)}
                )
                results["false_positives"].append(
                    {**where, "model": "extracted from the clean model", **judge(mk0, vk0, innocent, seed)}
                )
                for scheme, (mk, vk) in keys.items():
                    t0 = time.perf_counter()
                    try:
                        marked = mark(
                            mk, embedding="pretrained", train_images=owner_data.images,
                            train_labels=owner_data.labels, dataset_classes=2, base_model=clean, device=device,
                            progress=False, target_trigger_accuracy=1.0,
                            config=recipe_config(arch, epochs=config.mark_epochs, seed=10 + seed, triggers_per_batch=8),
                        )  # fmt: skip
                    except UsageError as exc:  # Mark refuses a key the clean model already passes
                        results["refused"].append({**where, "scheme": scheme, "why": str(exc)})
                        log(f"seed {seed} {setting} {watermark} {scheme}: refused ({exc})")
                        continue
                    protected = loaded(marked.model, marked.arguments)
                    stolen = steal(protected, 100 + seed, init)
                    cell = {
                        **where, "scheme": scheme, "mark_epochs": marked.epochs,
                        "mark_seconds": round(time.perf_counter() - t0, 1),
                        "protected": judge(mk, vk, protected, seed), "stolen": judge(mk, vk, stolen, seed),
                    }  # fmt: skip
                    results["cells"].append(cell)
                    p, s = cell["protected"], cell["stolen"]
                    log(f"seed {seed} {setting} {watermark} {scheme}: protected {p['validation_accuracy']:.4f} wm "
                        f"{p['watermark_accuracy']:.2f}; stolen {s['validation_accuracy']:.4f} wm "
                        f"{s['watermark_accuracy']:.2f} (mean p {s['mean_p']:.3f}, q {s['mean_q']:.3f}, "
                        f"p-value {s['p_value']:.1e}, WDR {s['wdr']:.2f})")  # fmt: skip
                save()
        log(f"seed {seed} done in {time.perf_counter() - t_seed:.0f} s")
    for j in range(config.unmarked):  # independently trained unmarked models, fine-tuned from their own public one
        public, _ = public_model(10_000 + j)
        model = owner_model(10_000 + j, public)
        for (seed, watermark), (mk, vk) in keys_by_seed.items():
            results["false_positives"].append(
                {"seed": seed, "setting": "shared", "watermark": watermark, "model": f"independent text CNN {j}",
                 **judge(mk, vk, model, seed)}
            )  # fmt: skip
        log(f"unmarked text model {j} checked against {len(keys_by_seed)} keys")
    results["finished"] = time.strftime("%Y-%m-%d %H:%M:%S")
    save()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", choices=sorted(CONFIGS), default="cpu")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    run(CONFIGS[args.config], args.device)
    log(f"wrote {OUT}; python experiments/feature_sharing.py --report-only renders it")


if __name__ == "__main__":
    main()
