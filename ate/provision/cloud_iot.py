"""Registering one locked unit with AWS IoT Core through boto3: its thing, its device
certificate, the policy on the certificate and the certificate on the thing. Every step
is idempotent, so a registration cut short is simply run again: an existing thing is
recognised (never replaced), a certificate already registered is found by its id, and
attaching twice is a no-op in IoT.

Certificates are registered **without a CA** (RegisterCertificateWithoutCA): registering
the manufacturing CA itself needs a verification certificate signed with the CA's key
(kept in the HSM, away from the registration queue), and CA-less registration lets the
same device certificate be registered in further accounts or regions later. Devices are
then only accepted once registered here, which is what the queue guarantees.

Blocking (boto3); the queue (ate.provision.cloud_queue) runs it off the event loop.
Credentials come from boto3's own chain (environment, profile, instance role), never from
the profile, and never appear in a result or an error. May import boto3, botocore,
cryptography, stdlib and ate.provision.cloud_queue (the queue's vocabulary).
"""

from __future__ import annotations

import hashlib
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from ate.provision.cloud_queue import CloudAway, Registered, Unit


def certificate_id(cert_pem: str) -> str:
    """IoT's certificate id: SHA-256 of the certificate's DER, hex."""
    der = x509.load_pem_x509_certificate(cert_pem.encode()).public_bytes(serialization.Encoding.DER)
    return hashlib.sha256(der).hexdigest()


class AwsIotRegistrar:
    """One boto3 IoT client for a region (and, for tests, an endpoint URL)."""

    def __init__(self, *, region: str, policy: str, endpoint_url: str | None = None) -> None:
        self.policy = policy
        # One attempt per call: the queue owns retries and back-off, so a cloud that is
        # away costs one short failure, not botocore's own retry sleeps.
        config = Config(
            retries={"max_attempts": 1, "mode": "standard"}, connect_timeout=3, read_timeout=10
        )
        self._client: Any = boto3.client(
            "iot", region_name=region, endpoint_url=endpoint_url or None, config=config
        )

    def register(self, unit: Unit) -> Registered:
        """Thing, certificate, policy, principal; CloudAway when the cloud is not there."""
        try:
            thing_arn, thing_existed = self._thing(unit)
            cert_id, cert_arn, cert_existed = self._certificate(unit)
            self._client.attach_policy(policyName=self.policy, target=cert_arn)
            self._client.attach_thing_principal(thingName=unit.thing_name, principal=cert_arn)
        except ClientError as exc:
            err = exc.response.get("Error", {})
            raise CloudAway(
                f"AWS IoT refused ({err.get('Code', '?')}): {err.get('Message', '')}".strip()
            ) from None
        except BotoCoreError as exc:
            raise CloudAway(f"AWS IoT not reachable: {exc}") from None
        return Registered(
            unit.thing_name, thing_arn, thing_existed, cert_id, cert_arn, cert_existed
        )

    def _thing(self, unit: Unit) -> tuple[str, bool]:
        try:
            found = self._client.describe_thing(thingName=unit.thing_name)
            return str(found["thingArn"]), True
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "ResourceNotFoundException":
                raise
        made = self._client.create_thing(
            thingName=unit.thing_name,
            attributePayload={
                "attributes": {"serial": unit.serial, "mac": unit.chip_id.replace(":", "")}
            },
        )
        return str(made["thingArn"]), False

    def _certificate(self, unit: Unit) -> tuple[str, str, bool]:
        try:
            made = self._client.register_certificate_without_ca(
                certificatePem=unit.cert_pem, status="ACTIVE"
            )
            return str(made["certificateId"]), str(made["certificateArn"]), False
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "ResourceAlreadyExistsException":
                raise
            cert_id = exc.response.get("resourceId") or certificate_id(unit.cert_pem)
            arn = exc.response.get("resourceArn")
            if not arn:
                described = self._client.describe_certificate(certificateId=cert_id)
                arn = described["certificateDescription"]["certificateArn"]
            return str(cert_id), str(arn), True
