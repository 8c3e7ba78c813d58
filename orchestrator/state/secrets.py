"""Keep credentials out of everything we write: registry, logs, reports, recorded command lines.

Agents need API keys in their environment, and users sometimes pass tokens as agent arguments;
any value of a secret-looking environment variable is replaced wherever we record text.
"""
from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence

_SECRET_NAME = re.compile(r"KEY|TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIAL|AUTH|COOKIE|SESSION", re.I)
MIN_SECRET_LENGTH = 8  # shorter values ("1", "true") would redact ordinary text
MASK = "***"


def secret_values(environ: Mapping[str, str]) -> list[str]:
    """Values worth hiding, longest first so a secret containing another is masked whole."""
    values = {v for k, v in environ.items() if _SECRET_NAME.search(k) and len(v) >= MIN_SECRET_LENGTH}
    return sorted(values, key=len, reverse=True)


class Redactor:
    def __init__(self, secrets: Iterable[str]) -> None:
        self.secrets = [s for s in secrets if s]
        self._bytes = [s.encode() for s in self.secrets]

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> Redactor:
        return cls(secret_values(environ))

    def text(self, value: str) -> str:
        for secret in self.secrets:
            if secret in value:
                value = value.replace(secret, MASK)
        return value

    def raw(self, value: bytes) -> bytes:
        for secret in self._bytes:
            if secret in value:
                value = value.replace(secret, MASK.encode())
        return value

    def argv(self, argv: Sequence[str]) -> list[str]:
        return [self.text(a) for a in argv]
