#!/usr/bin/env python3
"""Independent webhook signature checker for tidings' integration tests.

Reads one JSON object from stdin:

    {"scheme": "hmac-sha256" | "standard-webhooks",
     "secret": "whsec_...",
     "headers": {"Header-Name": "value", ...},
     "body_b64": "<base64 of the exact request body>"}

Verification is done by the official libraries only (no HMAC code here):

* hmac-sha256:       stripe.WebhookSignature.verify_header (Stripe's scheme:
                     header "X-Webhook-Signature: t=<unix>,v1=<hex>[,v1=<hex>...]",
                     HMAC key = UTF-8 bytes of the whole secret string).
* standard-webhooks: standardwebhooks.Webhook(secret).verify(...)
                     (key = base64-decoded part after "whsec_").

Exit codes: 0 and "ok" on stdout when verified; 1 and the library's error when
rejected; 2 for malformed input; 3 when a library is not installed
(pip install stripe standardwebhooks).
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
    else:
        fail(2, f"bad input: unknown scheme {scheme!r}")
    print("ok")
    sys.exit(0)


if __name__ == "__main__":
    main()
