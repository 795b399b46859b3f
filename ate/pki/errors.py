"""Why a device certificate could not be checked, issued or trusted, in one sentence an
operator can act on.

Every exception here is a `PkiError`; str() is the whole reason and never contains a PIN, a
password or key material. Imports nothing (stdlib only).
"""

from __future__ import annotations


class PkiError(Exception):
    """Base of every failure of ate.pki; str() is the whole reason."""


class TemplateError(PkiError, ValueError):
    """A certificate template (from the station's configuration) is not acceptable.

    Also a `ValueError`, so configuration models that validate with it report it in place.
    """


class CsrRejected(PkiError):
    """The device's certificate signing request is not acceptable (the reason is the message)."""


class CaUnavailable(PkiError):
    """The issuing CA cannot sign: module, token, key or file missing, wrong PIN, HSM gone."""


class TrustError(PkiError):
    """A chain, a trust anchor or the environment's trust rules are violated."""
