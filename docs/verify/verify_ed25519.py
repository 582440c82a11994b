"""Verify a tidings webhook signed with ed25519 (Standard Webhooks v1a) in Python, with the
`cryptography` package (pip install cryptography).

Pass the RAW request body bytes (not re-serialised JSON), the webhook-id, webhook-timestamp
and webhook-signature headers, and the rule's public key (whpk_...). The receiver holds
nothing secret: a leaked public key lets nobody sign.
"""
import base64
import binascii
import time

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey


def verify(public_key: str, msg_id: str, timestamp: str, signature_header: str,
           raw_body: bytes, tolerance_s: int = 300) -> bool:
    if not public_key.startswith("whpk_") or not timestamp.isdigit():
        return False
    if abs(time.time() - int(timestamp)) > tolerance_s:
        return False  # too old (or clock skew): reject replays
    key = Ed25519PublicKey.from_public_bytes(base64.b64decode(public_key[len("whpk_"):]))
    message = f"{msg_id}.{timestamp}.".encode() + raw_body
    # During a key rotation the header carries one "v1a,<base64>" per live key: any match is enough.
    for entry in signature_header.split(" "):
        version, _, sig = entry.partition(",")
        if version != "v1a":
            continue
        try:
            key.verify(base64.b64decode(sig), message)
            return True
        except (InvalidSignature, ValueError, binascii.Error):
            continue
    return False


if __name__ == "__main__":
    import sys

    public_key, msg_id, timestamp, signature, body_path = sys.argv[1:6]
    with open(body_path, "rb") as f:
        ok = verify(public_key, msg_id, timestamp, signature, f.read())
    print("ok" if ok else "invalid")
    sys.exit(0 if ok else 1)
