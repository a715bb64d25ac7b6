"""Secret redaction: values of secret-looking environment variables never reach the model."""

from __future__ import annotations

import os
import re
from typing import Mapping

# Environment variable names that hold credentials.
_SECRET_ENV = re.compile(r"KEY|TOKEN|SECRET|PASSW|CREDENTIAL|AUTH|PRIVATE|SESSION|COOKIE", re.I)
_SECRET_CACHE: dict[tuple, re.Pattern | None] = {}


def redact_secrets(text: str, environ: Mapping[str, str] | None = None) -> str:
    """Replace the values of secret-looking environment variables (``*KEY*``, ``*TOKEN*`` ...) in ``text``.

    Defence in depth for everything sent to the model (observations, variable summaries): the
    guard stops agent code from reading the environment; this catches a secret that reached an
    output some other way (a variable the user made from it, a library's error message).
    """
    if not text:
        return text
    pattern = _secrets_pattern(environ)
    return pattern.sub("[redacted secret]", text) if pattern is not None else text


def redact_all(texts: list[str], environ: Mapping[str, str] | None = None) -> list[str]:
    """``redact_secrets`` for many texts, reading the environment once."""
    pattern = _secrets_pattern(environ) if texts else None
    return [pattern.sub("[redacted secret]", t) for t in texts] if pattern is not None else list(texts)


def _secrets_pattern(environ: Mapping[str, str] | None) -> re.Pattern | None:
    env = os.environ if environ is None else environ
    secrets = tuple(sorted({v for k, v in env.items() if _SECRET_ENV.search(k) and isinstance(v, str) and len(v) >= 8},
                           key=len, reverse=True))
    if not secrets:
        return None
    pattern = _SECRET_CACHE.get(secrets)
    if pattern is None:
        pattern = re.compile("|".join(re.escape(s) for s in secrets))
        _SECRET_CACHE.clear()
        _SECRET_CACHE[secrets] = pattern
    return pattern
