"""The feature-sharing scheme end to end through the command line and real prediction APIs: the owner trains,
makes a perturbed in-distribution key (a 7 with a 3x3 square -> 1) and marks; `wmproof serve` exposes the
protected model; a thief extracts it through the API (`wmproof attack extract --url`); the stolen model is
served in turn and the judge runs `wmproof verify --url` against it, and against an independently trained
model served the same way. Writes the transcript to docs/reproductions/feature-sharing/api.md, which
``experiments/feature_sharing.py`` includes in its report.

    python experiments/feature_sharing_api.py        # about 10 minutes on 2 cores

Every command is the installed ``wmproof`` entry point, run as a subprocess; the servers listen on 127.0.0.1
on free ports. Secrets (identity, marking key, passphrase) stay in a temporary directory.
"""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from reporting import log

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "docs" / "reproductions" / "feature-sharing" / "api.md"
WMPROOF = str(Path(sys.executable).with_name("wmproof"))
LIMIT = "30000"  # the owner's data: MNIST train[0:30,000], as in the reproduction
ARCH = "mnist_ewe_cnn"  # the reproduction's CNN (Jia et al.'s, the paper's)
K = "43"  # items per batch of 128 while marking: Jia et al.'s mix, as in the reproduction


class Transcript:
    def __init__(self, work: Path) -> None:
        self.work = work
        self.lines: list[str] = []

    def run(self, *args: str, expect: int = 0) -> str:
        shown = " ".join(shlex.quote(a.replace(str(self.work) + "/", "")) for a in args)
        log(f"$ wmproof {shown}")
        started = time.perf_counter()
        done = subprocess.run([WMPROOF, *args], cwd=self.work, capture_output=True, text=True)
        seconds = time.perf_counter() - started
        if done.returncode != expect:
            raise SystemExit(f"wmproof {shown} exited {done.returncode}:\n{done.stdout}\n{done.stderr}")
        output = (done.stdout + done.stderr).replace(str(self.work) + "/", "")
        output = re.sub(r"\x1b\[[0-9;]*m", "", output).strip()
        self.lines += [f"$ wmproof {shown}    # {seconds:.0f} s, exit {done.returncode}", output, ""]
        return done.stdout

    def serve(self, model: str, name: str) -> tuple[subprocess.Popen[str], str]:
        """`wmproof serve` in the background on a free port; returns the process and its base URL."""
        process = subprocess.Popen(
            [WMPROOF, "serve", model, "--name", name, "--port", "0", "--host", "127.0.0.1"],
            cwd=self.work, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )  # fmt: skip
        assert process.stdout is not None
        deadline = time.time() + 120
        while time.time() < deadline:
            line = process.stdout.readline()
            found = re.search(r"at (http://127\.0\.0\.1:\d+)/v2/models/", line)
            if found:
                self.lines += [f"$ wmproof serve {model} --name {name} --port 0 &", line.strip(), ""]
                return process, found.group(1)
            if process.poll() is not None:
                break
        process.kill()
        raise SystemExit(f"wmproof serve {model} did not start")


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="wmproof-api-") as tmp:
        work = Path(tmp)
        (work / "pw.txt").write_text("a passphrase only this walkthrough knows\n")
        (work / "pw.txt").chmod(0o600)
        t = Transcript(work)
        secret = ["--passphrase-file", "pw.txt"]
        t.run("identity", "new", "--out", "owner.wid", "--label", "API owner", *secret)
        t.run("train", "--arch", ARCH, "--limit-train", LIMIT, "--seed", "0", "--out", "clean.safetensors")
        t.run(
            "keygen", "-i", "owner.wid", "--identity-passphrase-file", "pw.txt", "--scheme", "feature-sharing",
            "--param", "watermark=id", "--param", "perturbation=snnl", "--model", "clean.safetensors",
            "--limit-train", LIMIT,
            "--items", "100", "--alpha", "0.05", "--marking-key", "api.wmk", "--verification-key", "api.wvk",
            *secret,
        )  # fmt: skip
        t.run(
            "mark", "--key", "api.wmk", "--model", "clean.safetensors", "--out", "api.safetensors",
            "--triggers-per-batch", K, "--max-epochs", "10", "--limit-train", LIMIT, *secret,
        )  # fmt: skip
        verify = ["verify", "--key", "api.wmk", "--vk", "api.wvk", "--no-timestamp", *secret]
        api, url = t.serve("api.safetensors", "api")
        try:
            t.run(
                "attack", "extract", "--url", url, "--model-name", "api", "--arch", ARCH, "--queries",
                "20000", "--labels", "soft", "--epochs", "3", "--agreement", "0", "-o", "stolen.safetensors",
            )  # fmt: skip
        finally:
            api.terminate()
        for model, name, expect in (("stolen.safetensors", "stolen", 0), ("innocent.safetensors", "innocent", 1)):
            if name == "innocent":
                t.run("train", "--arch", ARCH, "--limit-train", LIMIT, "--seed", "1000", "--out", model)
            server, url = t.serve(model, name)
            try:
                t.run(*verify, "--url", url, "--model-name", name, expect=expect)
            finally:
                server.terminate()
        OUT.parent.mkdir(parents=True, exist_ok=True)
        OUT.write_text("```\n" + "\n".join(t.lines).rstrip() + "\n```\n")
        log(f"wrote {OUT}")


if __name__ == "__main__":
    main()
