"""KeyGen / Mark / Verify, generic over a watermark scheme, and the files they read and write.

Import-light by design: nothing here imports torch at module level (Mark and the local oracle load the
engine when they run), so verification keys and reports can be handled without it.
"""

from .identity import (
    Identity,
    PublicIdentity,
    load_identity,
    read_public_identity,
    save_identity,
)
from .keys import (
    DEFAULT_ALPHA,
    PROTOCOL,
    MarkingKey,
    VerificationKey,
    check_marking_key,
    commit_key,
    keygen,
    load_marking_key,
    load_verification_key,
    open_key,
    parse_verification_key,
    save_marking_key,
    save_verification_key,
)
from .mark import MarkResult, mark
from .verify import VerificationReport, verify_private

__all__ = [
    "DEFAULT_ALPHA",
    "PROTOCOL",
    "Identity",
    "MarkResult",
    "MarkingKey",
    "PublicIdentity",
    "VerificationKey",
    "VerificationReport",
    "check_marking_key",
    "commit_key",
    "keygen",
    "open_key",
    "load_identity",
    "load_marking_key",
    "load_verification_key",
    "mark",
    "parse_verification_key",
    "read_public_identity",
    "save_identity",
    "save_marking_key",
    "save_verification_key",
    "verify_private",
]
