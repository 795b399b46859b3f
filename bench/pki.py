"""Device certificate issuance throughput: certificates a second signed through PKCS#11
(SoftHSM2, key in the token, one thread), with the file CA for comparison.

`python -m bench.pki [n]`. Creates its own SoftHSM2 token in a temporary directory, which
sets SOFTHSM2_CONF for this process before python-pkcs11 first loads the module.
"""

from __future__ import annotations

import secrets
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from ate.pki.ca import IssuingCA, new_cert_serial
from ate.pki.csr import CertTemplate, subject_for
from ate.pki.devpki import make_dev_pki
from ate.pki.file_ca import open_file_ca
from ate.pki.pkcs11_ca import open_pkcs11_ca
from ate.pki.softhsm import create_token

Request = tuple[x509.CertificateSigningRequest, x509.Name]


def _requests(n: int, template: CertTemplate) -> list[Request]:
    out: list[Request] = []
    for i in range(n):
        subject = subject_for(
            template,
            serial=f"SN{i:06d}",
            mac=f"24:0a:c4:00:{i >> 8 & 0xFF:02x}:{i & 0xFF:02x}",
            product="bench",
        )
        key = ec.generate_private_key(ec.SECP256R1())
        csr = (
            x509.CertificateSigningRequestBuilder().subject_name(subject).sign(key, hashes.SHA256())
        )
        out.append((csr, subject))
    return out


def _per_second(ca: IssuingCA, requests: list[Request], template: CertTemplate) -> float:
    now = datetime.now(UTC)
    start = time.perf_counter()
    for csr, subject in requests:
        ca.issue(csr, subject, template, serial_number=new_cert_serial(), now=now)
    return len(requests) / (time.perf_counter() - start)


def issuance_throughput(n: int = 200) -> dict[str, float]:
    """Issue n certificates through a SoftHSM2-held intermediate on one thread (CSRs made
    beforehand, not timed), then n through a file CA; certificates a second and ms each."""
    template = CertTemplate(common_name="{product}-{serial}", organization="ate bench")
    requests = _requests(n, template)
    with tempfile.TemporaryDirectory(prefix="ate-bench-pki-") as tmp_name:
        tmp = Path(tmp_name)
        token = create_token(
            tmp / "softhsm", "ate-bench", pin=secrets.token_hex(8), so_pin=secrets.token_hex(8)
        )
        token_pki = make_dev_pki(tmp / "pki-token", token=token)
        file_pki = make_dev_pki(tmp / "pki-file")
        hsm = open_pkcs11_ca(
            token.module,
            token.label,
            "mfg-ica",
            token.pin,
            token_pki.ica_cert,
            token_pki.chain,
            token_pki.root_cert,
        )
        assert file_pki.ica_key is not None
        plain = open_file_ca(file_pki.ica_cert, file_pki.ica_key, (), file_pki.root_cert, None)
        try:
            hsm_rate = _per_second(hsm, requests, template)
            file_rate = _per_second(plain, requests, template)
        finally:
            hsm.close()
            plain.close()
    return {
        "certs_per_s": hsm_rate,
        "ms_per_cert": 1000.0 / hsm_rate,
        "file_ca_certs_per_s": file_rate,
    }


def main(argv: list[str]) -> None:
    n = int(argv[0]) if argv else 200
    result = issuance_throughput(n)
    print(f"device certificate issuance, n={n}, one thread")
    print(
        f"  PKCS#11 (SoftHSM2): {result['certs_per_s']:.0f} certs/s, "
        f"{result['ms_per_cert']:.2f} ms/cert"
    )
    print(f"  file CA:            {result['file_ca_certs_per_s']:.0f} certs/s")


if __name__ == "__main__":
    main(sys.argv[1:])
