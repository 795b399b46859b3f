"""Defence in depth against secrets in logs and records: refuse to write them.

Nothing in ate should ever hand a secret to a log, but a plugin might. Keys whose name
says secret are replaced, and PEM private-key blocks in any string are masked.
"""

from __future__ import annotations

import re
from collections.abc import MutableMapping
from typing import Any

_SECRET_KEY = re.compile(r"(secret|passw|private|priv_?key|token|pin$|^pin|hmac_key)", re.I)
_PEM_PRIVATE = re.compile(
    r"-----BEGIN ([A-Z ]*)PRIVATE KEY-----.*?-----END \1PRIVATE KEY-----", re.S
)
REDACTED = "[redacted]"


def redact_text(text: str) -> str:
    if "PRIVATE KEY" not in text:
        return text
    return _PEM_PRIVATE.sub("[redacted private key]", text)


def redact(value: Any) -> Any:
    """A copy of `value` with secret-named keys and PEM private keys masked."""
    if isinstance(value, dict):
        return {
            k: REDACTED if isinstance(k, str) and _SECRET_KEY.search(k) else redact(v)
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [redact(v) for v in value]
    if isinstance(value, str):
        return redact_text(value)
    return value


def structlog_processor(
    _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
) -> dict[str, Any]:
    clean: dict[str, Any] = redact(dict(event_dict))
    return clean
