"""Verify a tidings webhook (scheme hmac-sha256) in Python, with no third-party package.

Usage from a web framework: pass the RAW request body bytes (not re-serialised JSON), the
X-Webhook-Signature header and the rule's signing secret (whsec_...).
"""
import hashlib
import hmac
import time


def verify(secret: str, signature_header: str, raw_body: bytes, tolerance_s: int = 300) -> bool:
    parts = [p.split("=", 1) for p in signature_header.split(",") if "=" in p]
    timestamps = [v for k, v in parts if k == "t"]
    signatures = [v for k, v in parts if k == "v1"]
    if len(timestamps) != 1 or not signatures or not timestamps[0].isdigit():
        return False
    t = timestamps[0]
    if abs(time.time() - int(t)) > tolerance_s:
        return False  # too old (or clock skew): reject replays
    expected = hmac.new(secret.encode(), t.encode() + b"." + raw_body, hashlib.sha256).hexdigest()
    # During a secret rotation the header carries one v1 per live secret: any match is enough.
    return any(hmac.compare_digest(expected, s) for s in signatures)


if __name__ == "__main__":
    import sys

    secret, header, body_path = sys.argv[1:4]
    with open(body_path, "rb") as f:
        ok = verify(secret, header, f.read())
    print("ok" if ok else "invalid")
    sys.exit(0 if ok else 1)
