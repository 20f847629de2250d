"""The registry contract's committed build artifacts, installed as ``wmproof.chain.artifacts``.

``node contracts/build.js`` writes them; ``node contracts/build.js --check`` (run by the tests) proves that a
rebuild from ``contracts/WmproofRegistry.sol`` with the pinned solc is byte-identical.
"""
