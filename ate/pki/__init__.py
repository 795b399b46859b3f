"""Device certificates: CSR checks, the issuing CA (PKCS#11 token or, for development, a PEM
file), trust rules per environment, and a test PKI on SoftHSM2.

May import only cryptography, pkcs11 (python-pkcs11) and the standard library; nothing from
ate outside ate.pki. The backends are imported from their modules (`ate.pki.pkcs11_ca`
loads python-pkcs11), the common vocabulary from here.
"""

from __future__ import annotations

from ate.pki.ca import IssuingCA, load_pem_chain, new_cert_serial
from ate.pki.csr import CertTemplate, check_csr, fingerprint, public_key_bytes, subject_for
from ate.pki.errors import CaUnavailable, CsrRejected, PkiError, TemplateError, TrustError
from ate.pki.trust import check_trust, is_test_root, verify_issued

__all__ = [
    "CaUnavailable",
    "CertTemplate",
    "CsrRejected",
    "IssuingCA",
    "PkiError",
    "TemplateError",
    "TrustError",
    "check_csr",
    "check_trust",
    "fingerprint",
    "is_test_root",
    "load_pem_chain",
    "new_cert_serial",
    "public_key_bytes",
    "subject_for",
    "verify_issued",
]
