#!/usr/bin/env python3
"""Independent webhook signature checker for tidings' integration tests.

Reads one JSON object from stdin:

    {"scheme": "hmac-sha256" | "standard-webhooks" | "ed25519",
     "secret": "whsec_..." (or for ed25519 the public key "whpk_..."),
     "headers": {"Header-Name": "value", ...},
     "body_b64": "<base64 of the exact request body>"}

Verification is done by the official libraries only (no HMAC code here):

* hmac-sha256:       stripe.WebhookSignature.verify_header (Stripe's scheme:
                     header "X-Webhook-Signature: t=<unix>,v1=<hex>[,v1=<hex>...]",
                     HMAC key = UTF-8 bytes of the whole secret string).
* standard-webhooks: standardwebhooks.Webhook(secret).verify(...)
                     (key = base64-decoded part after "whsec_").
* ed25519:           Standard Webhooks v1a, checked with the `cryptography` package's
                     Ed25519PublicKey (key = base64-decoded part after "whpk_") over
                     "<webhook-id>.<webhook-timestamp>.<body>"; any v1a entry may match.

Exit codes: 0 and "ok" on stdout when verified; 1 and the library's error when
rejected; 2 for malformed input; 3 when a library is not installed
(pip install stripe standardwebhooks cryptography).
"""

import base64
import binascii
import json
import sys

TOLERANCE_SECONDS = 300


def fail(code, message):
    print(message)
    sys.exit(code)


def header_lookup(headers, name):
    wanted = name.lower()
    for key, value in headers.items():
        if key.lower() == wanted:
            return value
    return None


def verify_hmac_sha256(secret, headers, body):
    try:
        import stripe
    except ImportError as exc:
        fail(3, f"python package 'stripe' is not installed ({exc}); pip install stripe")

    signature = header_lookup(headers, "X-Webhook-Signature")
    if signature is None:
        fail(1, "missing X-Webhook-Signature header")
    try:
        stripe.WebhookSignature.verify_header(
            body, signature, secret, tolerance=TOLERANCE_SECONDS
        )
    except stripe.SignatureVerificationError as exc:
        fail(1, f"stripe: {exc.user_message or exc}")


def verify_standard_webhooks(secret, headers, body):
    try:
        from standardwebhooks.webhooks import Webhook
    except ImportError as exc:
        fail(
            3,
            f"python package 'standardwebhooks' is not installed ({exc}); "
            "pip install standardwebhooks",
        )

    wanted = {}
    for name in ("webhook-id", "webhook-timestamp", "webhook-signature"):
        value = header_lookup(headers, name)
        if value is not None:
            wanted[name] = value
    try:
        # json_parse=False: the library would otherwise json.loads the body and
        # report a non-JSON body as a failure unrelated to the signature.
        Webhook(secret).verify(body, wanted, json_parse=False)
    except Exception as exc:  # WebhookVerificationError, or malformed header values
        fail(1, f"standardwebhooks: {type(exc).__name__}: {exc}")


def verify_ed25519(public_key, headers, raw_body):
    try:
        from cryptography.exceptions import InvalidSignature
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
    except ImportError as exc:
        fail(3, f"python package 'cryptography' is not installed ({exc}); pip install cryptography")
    import time

    if not public_key.startswith("whpk_"):
        fail(1, "the public key does not start with whpk_")
    try:
        key = Ed25519PublicKey.from_public_bytes(base64.b64decode(public_key[5:], validate=True))
    except (ValueError, binascii.Error) as exc:
        fail(1, f"bad public key: {exc}")
    msg_id = header_lookup(headers, "webhook-id")
    timestamp = header_lookup(headers, "webhook-timestamp")
    signature = header_lookup(headers, "webhook-signature")
    if msg_id is None or timestamp is None or signature is None:
        fail(1, "missing webhook-id, webhook-timestamp or webhook-signature")
    if not timestamp.isdigit() or abs(time.time() - int(timestamp)) > TOLERANCE_SECONDS:
        fail(1, f"timestamp {timestamp!r} is not within {TOLERANCE_SECONDS} s of now")
    message = f"{msg_id}.{timestamp}.".encode() + raw_body
    for entry in signature.split(" "):
        version, _, b64 = entry.partition(",")
        if version != "v1a":
            continue
        try:
            key.verify(base64.b64decode(b64, validate=True), message)
            return
        except (InvalidSignature, ValueError, binascii.Error):
            continue
    fail(1, f"no v1a entry of {signature!r} verifies with this public key")


def main():
    try:
        request = json.load(sys.stdin)
        scheme = request["scheme"]
        secret = request["secret"]
        headers = request.get("headers") or {}
        raw = base64.b64decode(request["body_b64"], validate=True)
    except (ValueError, KeyError, TypeError, binascii.Error) as exc:
        fail(2, f"bad input: {type(exc).__name__}: {exc}")
    if not isinstance(headers, dict):
        fail(2, "bad input: headers must be a JSON object")
    try:
        # Both libraries sign the text form of the body.
        body = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        fail(2, f"bad input: body is not UTF-8 ({exc})")

    if scheme == "hmac-sha256":
        verify_hmac_sha256(secret, headers, body)
    elif scheme == "standard-webhooks":
        verify_standard_webhooks(secret, headers, body)
    elif scheme == "ed25519":
        verify_ed25519(secret, headers, raw)
    else:
        fail(2, f"bad input: unknown scheme {scheme!r}")
    print("ok")
    sys.exit(0)


if __name__ == "__main__":
    main()
