"""JSON from someone else: the one way wmproof parses it (model-file metadata, remote evidence, the
prediction API's requests and answers).

``json.loads`` recurses in C once per level of nesting, and a document of 100,000 ``[`` overflows the C
stack inside a deep call stack (a segmentation fault, measured in the test suite) before Python's recursion
limit stops it. So nesting is measured first: a document whose brackets alone cannot nest deeper than the
limit goes straight to the parser; any other is scanned (strings and their escapes skipped) and refused
when it nests deeper than ``max_depth``.
"""

from __future__ import annotations

import json
from typing import Any

#: Deeper than any document wmproof reads (evidence, metadata and protocol messages nest under 10 levels).
MAX_DEPTH = 64


def json_depth(text: bytes) -> int:
    """The deepest nesting of arrays and objects in ``text`` (bytes of JSON, strings skipped)."""
    depth = deepest = 0
    in_string = escaped = False
    for byte in text:
        if in_string:
            if escaped:
                escaped = False
            elif byte == 0x5C:  # backslash
                escaped = True
            elif byte == 0x22:  # quote
                in_string = False
        elif byte == 0x22:
            in_string = True
        elif byte in (0x5B, 0x7B):  # [ {
            depth += 1
            deepest = max(deepest, depth)
        elif byte in (0x5D, 0x7D):  # ] }
            depth -= 1
    return deepest


def parse_json(data: bytes | str, max_depth: int = MAX_DEPTH) -> Any:
    """The JSON document in ``data``, or ValueError for anything else: not JSON, not UTF-8, nested deeper than
    ``max_depth``. Never RecursionError, never a crash."""
    raw = data.encode("utf-8", "surrogatepass") if isinstance(data, str) else bytes(data)
    if raw.count(b"[") + raw.count(b"{") > max_depth and json_depth(raw) > max_depth:
        raise ValueError(f"JSON nested deeper than {max_depth} levels")
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise ValueError("not a JSON document") from None
