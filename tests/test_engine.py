"""The training engine: trigger mixing per batch, reproducibility on CPU, evaluation, devices."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from wmproof.engine.device import resolve_device
from wmproof.engine.models import build_model
from wmproof.engine.train import TensorData, TrainConfig, accuracy, fit, predict_logits
from wmproof.errors import UsageError


def _data(n=300, seed=0):
    g = np.random.default_rng(seed)
    return TensorData.from_numpy(
        g.integers(0, 256, (n, 1, 28, 28), dtype=np.uint8), g.integers(0, 10, n), torch.device("cpu")
    )


class Recorder(nn.Module):
    """Wraps a model and records what every training batch held."""

    def __init__(self, inner):
        super().__init__()
        self.inner = inner
        self.batches = []

    def forward(self, x):
        if self.training:
            self.batches.append(x.detach().clone())
        return self.inner(x)


def test_k_trigger_items_are_appended_to_every_batch_and_cycle_evenly():
    data, triggers = _data(300), _data(7, seed=1)
    model = Recorder(build_model("mnist_mlp"))
    fit(model, data, TrainConfig(epochs=2, batch_size=64, triggers_per_batch=3), triggers=triggers, progress=False)
    sizes = [b.shape[0] for b in model.batches]
    assert sizes == [67, 67, 67, 67, 47] * 2  # 64 (or the 44 left over) + k = 3
    seen = np.zeros(7, dtype=int)
    for batch in model.batches:
        for row in batch[-3:]:
            matches = [i for i in range(7) if torch.equal(row, triggers.x[i])]
            assert len(matches) == 1  # the last k rows are trigger items
            seen[matches[0]] += 1
        assert not any(torch.equal(row, triggers.x[i]) for row in batch[:-3] for i in range(7))
    assert seen.sum() == 30 and seen.max() - seen.min() <= 1  # fresh permutation each cycle


def test_training_is_reproducible_on_cpu():
    data, triggers = _data(), _data(5, seed=1)

    def run(seed):
        torch.manual_seed(seed)
        model = build_model("mnist_cnn")
        fit(model, data, TrainConfig(epochs=1, batch_size=32, seed=seed), triggers=triggers, progress=False)
        return torch.cat([p.detach().flatten() for p in model.parameters()])

    assert torch.equal(run(3), run(3))
    assert not torch.equal(run(3), run(4))


def test_training_learns_and_stop_when_ends_early():
    data = _data(200)
    model = build_model("mnist_mlp")
    history = fit(
        model,
        data,
        TrainConfig(epochs=30, batch_size=50, seed=0),
        progress=False,
        stop_when=lambda s: s.train_accuracy > 0.9,
    )
    assert history.stopped_early and len(history.epochs) < 30
    assert accuracy(model, data) > 0.9  # memorised 200 random labels


def test_channels_last_evaluation_matches_plain_evaluation():
    torch.manual_seed(0)
    model = build_model("mnist_cnn").eval()
    x = torch.rand(250, 1, 28, 28)
    with torch.no_grad():
        reference = model(x)
    assert torch.allclose(predict_logits(model, x), reference, atol=1e-5)
    assert torch.allclose(predict_logits(model, x, batch_size=7), reference, atol=1e-5)


def test_device_resolution():
    assert resolve_device("cpu").type == "cpu"
    assert resolve_device(None).type in ("cpu", "cuda", "mps")
    with pytest.raises(UsageError):
        resolve_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(UsageError):
            resolve_device("cuda")


@pytest.mark.parametrize(
    "bad", [dict(epochs=-1), dict(batch_size=0), dict(optimizer="lbfgs"), dict(lr=0.0), dict(triggers_per_batch=0)]
)
def test_bad_config_is_a_usage_error(bad):
    with pytest.raises(UsageError):
        TrainConfig(**bad).check()


def test_progress_off_a_terminal_is_a_line_every_interval():
    """Issue 15, item 2: train and mark ran 9-13 minutes with no output at all when not on a terminal."""
    import io

    from wmproof.engine.progress import ProgressLines

    now = [0.0]
    out = io.StringIO()
    lines = ProgressLines("training mnist_mlp", 100, 30, stream=out, clock=lambda: now[0])
    for _ in range(100):
        now[0] += 1.0  # one step a second: a line at 30, 60 and 90 s, then the last one
        lines(epoch=1 + _ // 50, loss=0.5)
    lines.finish()
    printed = out.getvalue().splitlines()
    assert len(printed) == 4, printed
    assert printed[0] == (
        "progress: training mnist_mlp: 30/100 (30%), 0:00:30 elapsed, about 0:01:10 left, epoch 1, loss 0.5000"
    )
    assert printed[-1].startswith("progress: training mnist_mlp: 100/100 (100%), 0:01:40 elapsed, epoch 2")
    quiet = io.StringIO()
    short = ProgressLines("querying", 10, 30, stream=quiet, clock=lambda: now[0])
    short()
    short.finish()
    assert quiet.getvalue() == ""  # work shorter than the interval prints nothing


def test_a_scripted_train_prints_progress_lines(tmp_path, data_dir):
    """The real command, its stderr a pipe: lines at the interval set by $WMPROOF_PROGRESS_SECONDS."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    env = {**os.environ, "WMPROOF_PROGRESS_SECONDS": "0.1", "WMPROOF_DATA": str(data_dir)}
    wmproof = str(Path(sys.executable).parent / "wmproof")
    done = subprocess.run([wmproof, "train", "--arch", "mnist_mlp", "--epochs", "2", "--limit-train", "20000",
                           "--out", str(tmp_path / "m.safetensors")], capture_output=True, text=True, env=env,
                          timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr
    progress = [line for line in done.stderr.splitlines() if line.startswith("progress: training: ")]
    assert len(progress) >= 2 and "elapsed" in progress[0] and "epoch" in progress[0], done.stderr
    env["WMPROOF_PROGRESS_SECONDS"] = "0"
    quiet = subprocess.run([wmproof, "train", "--arch", "mnist_mlp", "--epochs", "1", "--limit-train", "2000",
                            "--out", str(tmp_path / "q.safetensors")], capture_output=True, text=True, env=env,
                           timeout=300)  # fmt: skip
    assert quiet.returncode == 0 and "progress:" not in quiet.stderr


def test_the_default_thread_count_leaves_busy_cpus_alone(monkeypatch):
    """Issue 15, item 6: the CPUs this process may use, less those running other work now."""
    import os
    import subprocess
    import sys
    import time

    from wmproof.engine import threads

    assert threads.available_cpus() == min(len(os.sched_getaffinity(0)), os.cpu_count())
    monkeypatch.setattr(threads, "available_cpus", lambda: 4)
    for busy, expected in ((0, 4), (1, 3), (3, 1), (9, 1)):
        monkeypatch.setattr(threads, "busy_cpus", lambda busy=busy: busy)
        assert threads.default_threads() == expected
    # The real count: processes spinning on every CPU are seen as busy.
    spin = "import time\nt = time.time()\nwhile time.time() - t < 20: pass\n"
    spinners = [subprocess.Popen([sys.executable, "-c", spin]) for _ in range(len(os.sched_getaffinity(0)))]
    try:
        time.sleep(0.5)
        assert threads.busy_cpus() >= len(spinners) - 1
    finally:
        for p in spinners:
            p.kill()
            p.wait()


def test_threads_are_set_for_torch_and_the_environment(monkeypatch):
    import os

    import torch

    from wmproof.engine.threads import configure_threads

    before = torch.get_num_threads()
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):  # so that monkeypatch puts back what was there
        monkeypatch.setenv(name, os.environ.get(name, ""))
    try:
        assert configure_threads(1) == 1 and torch.get_num_threads() == 1 and os.environ["OMP_NUM_THREADS"] == "1"
    finally:
        torch.set_num_threads(before)


def test_the_default_is_worked_out_only_when_a_device_is_chosen(monkeypatch):
    """`wmproof check` and other commands without torch do not wait 40 ms sampling the CPUs."""
    import os

    import torch

    from wmproof.engine import threads
    from wmproof.engine.device import resolve_device

    sampled = []
    monkeypatch.setattr(threads, "busy_cpus", lambda: sampled.append(1) or 0)
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        monkeypatch.setenv(name, os.environ.get(name, ""))
    before = torch.get_num_threads()
    try:
        threads.request_threads(None)
        assert sampled == []
        resolve_device("cpu")
        resolve_device("cpu")
        assert sampled == [1]  # once, at the first device
    finally:
        torch.set_num_threads(before)
        threads._deferred = False


def test_evaluation_leaves_the_layout_it_found():
    """predict_logits evaluates convolutional models channels-last on the CPU, and hands each model back in
    the layout it came in: fit trains some channels-last and evaluates them between epochs. A first layer
    with one input channel is contiguous in both layouts, so it cannot tell which the model is in (the first
    version asked it, and evaluated every MNIST CNN in the slow layout: make bench caught it, 1.95x instead of
    3x)."""
    from wmproof.engine.models import build_model
    from wmproof.engine.train import _is_channels_last, predict_logits

    x = torch.rand(8, 1, 28, 28)
    model = build_model("mnist_cnn")
    assert not _is_channels_last(model)
    predict_logits(model, x)
    assert not _is_channels_last(model)
    model.to(memory_format=torch.channels_last)
    assert _is_channels_last(model)
    predict_logits(model, x)
    assert _is_channels_last(model)


def test_a_one_cycle_recipe_fine_tunes_at_a_constant_tenth_of_its_peak():
    """PreTrained marking and the attacks that fine-tune a given model stop when their goal is reached, so
    a one-cycle schedule has no length to span there (recipe_config's docstring has the measurements)."""
    from wmproof.engine.train import recipe_config

    fast = recipe_config("mnist_fast")
    assert (fast.schedule, fast.lr, fast.betas, fast.epochs) == ("onecycle", 0.01, (0.7, 0.9), 2)
    tuned = recipe_config("mnist_fast", fine_tuning=True, epochs=20)
    assert (tuned.schedule, tuned.lr, tuned.betas, tuned.epochs) == ("constant", pytest.approx(0.001), (0.7, 0.9), 20)
    assert recipe_config("mnist_fast", fine_tuning=True, lr=0.02).lr == 0.02  # an explicit rate wins
    assert recipe_config("mnist_cnn", fine_tuning=True) == recipe_config("mnist_cnn")  # constant: unchanged


def test_fit_follows_the_one_cycle_schedule():
    """fit steps the schedule once per batch: the run differs from a constant-rate run of the same seed, and
    is reproducible."""
    x = torch.rand(64, 1, 28, 28)
    y = torch.randint(0, 10, (64,))
    data = TensorData(x, y)
    weights = []
    for schedule in ("constant", "onecycle", "onecycle"):
        torch.manual_seed(0)
        model = build_model("mnist_fast")
        fit(model, data, TrainConfig(epochs=2, batch_size=16, lr=0.01, schedule=schedule), progress=False)
        weights.append(model.classifier[3].weight.detach().clone())
    assert not torch.equal(weights[0], weights[1])
    assert torch.equal(weights[1], weights[2])


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [("schedule", "cosine", "learning-rate schedule"), ("betas", (0.9, 1.0), "betas"), ("betas", (0.9,), "betas")],
)
def test_bad_schedules_and_betas_are_one_line_errors(field, value, message):
    with pytest.raises(UsageError, match=message):
        TrainConfig(**{field: value}).check()
