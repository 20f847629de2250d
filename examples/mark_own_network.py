"""Mark a network from outside wmproof's zoo, on your own data, inside your own training loop.

    python examples/mark_own_network.py --data own-data --passphrase-file pass.txt --out-dir marked

1. An identity and a committed key (Adi et al. 2018's abstract-image triggers, 100 kept items).
2. The owner's own loop: SmallConvNet (examples/own_network.py) trained from scratch on the folder of PNG
   images, with k trigger items appended to every batch of 64 by wmproof's TriggerMixer (Adi et al. 5.1,
   their FromScratch embedding; they append 2 to batches of 100), until every item is learned.
3. The files: the model (safetensors naming its factory own_network:SmallConvNet), the sealed identity and
   marking key (mode 0600, encrypted with the passphrase), the public verification key.
4. Verification from Python; docs/python-api.md then verifies the same files with the CLI.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from own_network import SmallConvNet

import wmproof


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="a folder of class folders, or a .npz (wmproof.load_dataset)")
    parser.add_argument("--passphrase-file", type=Path, required=True, help="encrypts the identity and the key")
    parser.add_argument("--out-dir", type=Path, default=Path("marked"))
    parser.add_argument("--items", type=int, default=100)
    parser.add_argument("--max-epochs", type=int, default=30)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("-k", type=int, default=4, help="trigger items appended to each batch of 64")
    args = parser.parse_args()
    passphrase = args.passphrase_file.read_bytes().rstrip(b"\n")
    args.out_dir.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(args.seed)

    # 1. the owner's identity and key, for the task of this data set
    train = wmproof.load_dataset(args.data, "train")
    test = wmproof.load_dataset(args.data, "test")
    owner = wmproof.Identity.generate("Example owner")
    mk, vk = wmproof.keygen(
        owner, "adi-backdoor", items=args.items, num_classes=train.num_classes, input_shape=train.input_shape
    )

    # 2. the owner's own training loop, with k trigger items appended to every batch
    model = SmallConvNet(train.num_classes, list(train.input_shape))
    mixer = wmproof.trigger_mixer(mk, k=args.k, seed=args.seed)
    trigger_x, trigger_y = wmproof.trigger_items(mk)
    x = torch.from_numpy(train.images).float().div(255)
    y = torch.from_numpy(train.labels)
    optimizer = torch.optim.Adam(model.parameters(), lr=2e-3)
    generator = torch.Generator().manual_seed(args.seed)
    for epoch in range(1, args.max_epochs + 1):
        model.train()
        for batch in torch.randperm(len(x), generator=generator).split(64):
            xb, yb = mixer(x[batch], y[batch])
            optimizer.zero_grad()
            torch.nn.functional.cross_entropy(model(xb), yb).backward()
            optimizer.step()
        model.eval()
        with torch.no_grad():
            learned = (model(trigger_x).argmax(1) == trigger_y).float().mean().item()
            accuracy = model(torch.from_numpy(test.images).float().div(255)).argmax(1) == torch.from_numpy(test.labels)
        print(f"epoch {epoch:2d}: trigger accuracy {learned:.3f}, test accuracy {accuracy.float().mean():.4f}")
        if learned == 1.0:
            break
    else:
        raise SystemExit(f"the trigger items were not all learned in {args.max_epochs} epochs")

    # 3. the files
    arguments = {"num_classes": train.num_classes, "input_shape": list(train.input_shape), "width": 24}
    path = args.out_dir / "model.safetensors"
    digest = wmproof.save_model(model, path, architecture=SmallConvNet, arguments=arguments)
    wmproof.save_identity(owner, args.out_dir / "owner.wid", passphrase)
    wmproof.save_marking_key(mk, args.out_dir / "key.wmk", passphrase)
    wmproof.save_verification_key(vk, args.out_dir / "key.wvk")
    print(f"model {path} (sha256 {digest[:16]}), key {args.out_dir / 'key.wvk'}")

    # 4. verification, from Python: the module itself, then the file it was saved to
    for suspect in (model, path):
        if not isinstance(suspect, torch.nn.Module):
            wmproof.load_model(suspect, trust=["own_network"])  # the factory's code is trusted explicitly
        report = wmproof.verify(mk, vk, suspect)
        t = report.test
        name = "the module" if isinstance(suspect, torch.nn.Module) else suspect
        print(
            f"verify {name}: {'VERIFIED' if report.verified else 'NOT VERIFIED'}, "
            f"{t.matches} of {t.n} items (needed {t.min_matches}), p = {float(t.p_value):.2e}"
        )


if __name__ == "__main__":
    main()
