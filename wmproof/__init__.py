"""wmproof: prove, to a judge or to anyone, that a suspect neural network is yours.

Layers (DEVELOPERS.md): ``crypto`` (commitments, Merkle tree, transcript, signatures, canonical encoding,
sealed files; no torch), ``protocol`` (KeyGen / Mark / Verify, generic over a scheme), ``schemes``,
``engine`` (torch), ``oracles``, ``stats``.
"""

__version__ = "0.1.0"
