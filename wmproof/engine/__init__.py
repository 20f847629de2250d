"""The model-level engine: datasets, the model zoo, device-agnostic training with trigger mixing, evaluation.

Import the submodules you need (``wmproof.engine.data`` needs only numpy; ``models`` and ``train`` need
torch). Nothing on the proof-checking path imports this package.
"""
