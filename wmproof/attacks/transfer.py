"""Transfer learning (Adi et al. 2018, section 5.5, Table 2): the adversary moves the stolen model to a task of
its own (here MNIST to Fashion-MNIST, or the reverse) by re-training it there, output layer re-initialised and
every layer trained, as the paper's RTAL-style transfer does.

A model for another task answers with that task's classes, so the owner cannot query it as it is. As the paper
does, the original output layer is kept aside: the transferred model with its original output layer put back
is written next to the output (``*.kept-head.safetensors``) and is what the owner's key is verified through
(``wmproof verify -m OUT.kept-head.safetensors``). The paper's own numbers are CIFAR-10/100 to STL-10
(test 81.87 / 77.3 %, trigger 72.0 / 62.0 %); CIFAR and STL-10 are not available here.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..engine.data import image_dataset_names, image_dataset_spec
from ..errors import UsageError
from .base import AttackContext, AttackResult, Companion, ModelAttack, Param, Strength, TrainingBudget, training_params
from .fine_tuning import IMAGES, fine_tune

#: The default new task of each task: the other data set of the same shape.
OTHER_TASK = {"mnist": "fashion-mnist", "fashion-mnist": "mnist"}


class TransferLearning(ModelAttack):
    """Re-train the model on another task; the original output layer is kept aside for the owner."""

    name = "transfer"
    citation = "Adi et al. 2018, 5.5 (transfer learning, Table 2)"
    #: Adi et al. 5.5 train the new task's layer: more epochs move the shared features further.
    strength = Strength("epochs", (1, 5, 20), quick=1)
    parameters = {
        "to": Param(
            str,
            None,
            "the new task's data set (default: fashion-mnist for an mnist model, mnist for a fashion-mnist one)",
            choices=tuple(image_dataset_names()),
        ),
        **training_params(IMAGES),
    }
    companions = {
        "kept-head": (
            ".kept-head.safetensors",
            "the transferred model with its original output layer put back: verify the owner's key through it",
        )
    }

    def new_task(self, victim: Any, context: AttackContext, options: Mapping[str, Any]) -> str:
        source = context.task
        target = options["to"] or OTHER_TASK.get(source)
        if target is None:
            raise UsageError(f"transfer: name the new task with to=DATASET (there is no default for {source})")
        if target == source:
            raise UsageError(f"transfer: the new task must differ from the model's own ({source})")
        spec = image_dataset_spec(target)
        if tuple(spec.input_shape) != tuple(victim.input_shape):
            raise UsageError(
                f"transfer: {target} images are {'x'.join(map(str, spec.input_shape))}, the model takes "
                f"{'x'.join(map(str, victim.input_shape))}"
            )
        return target

    def check(self, victim: Any, context: AttackContext, options: Mapping[str, Any]) -> None:
        context.attacker_data(options["images"], self.new_task(victim, context, options))

    def run(self, victim: Any, context: AttackContext, **options: Any) -> AttackResult:
        from ..engine.models import build_model, output_layer_name
        from ..engine.train import TensorData, accuracy

        source = context.task
        target = self.new_task(victim, context, options)
        spec = image_dataset_spec(target)
        model = victim.module
        output = output_layer_name(model)
        kept = {k: v.detach().clone() for k, v in model.get_submodule(output).state_dict().items()}
        arguments = dict(victim.arguments)
        if spec.num_classes != victim.num_classes:  # a new output layer of the new task's size
            arguments["num_classes"] = spec.num_classes
            fresh = build_model(victim.architecture, **arguments).to(context.device)
            body = {k: v for k, v in model.state_dict().items() if not k.startswith(output + ".")}
            missing, unexpected = fresh.load_state_dict(body, strict=False)
            assert not unexpected and all(k.startswith(output + ".") for k in missing)
            model = fresh
        summary = fine_tune(
            model,
            context,
            TrainingBudget.of(options),
            last_layer_only=False,
            reinitialise=True,
            description=f"transfer to {target}",
            dataset=target,
        )
        # The owner's view: the transferred layers under the original output layer.
        view = build_model(victim.architecture, **victim.arguments).to(context.device)
        state = {k: v for k, v in model.state_dict().items() if not k.startswith(output + ".")}
        state.update({f"{output}.{k}": v for k, v in kept.items()})
        view.load_state_dict(state, strict=True)
        view.eval()
        original = context.test_data(source)
        summary.update(
            {
                "from": source,
                "to": target,
                "kept_head_test_accuracy": accuracy(
                    view, TensorData.from_numpy(original.images, original.labels, context.device)
                ),
            }
        )
        companion = Companion(
            self.companions["kept-head"][0],
            self.companions["kept-head"][1],
            module=view,
            architecture=victim.architecture,
            arguments=dict(victim.arguments),
        )
        return AttackResult(
            model,
            victim.architecture,
            arguments,
            summary,
            task=target,
            companions={"kept-head": companion},
            verify_through="kept-head",
        )
