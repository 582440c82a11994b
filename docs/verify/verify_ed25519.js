// Verify a tidings webhook signed with ed25519 (Standard Webhooks v1a) in Node.js (16+), with
// the built-in crypto module. Pass the RAW body bytes (e.g. express.raw({ type: "*/*" })), the
// webhook-id, webhook-timestamp and webhook-signature headers and the rule's public key (whpk_…).
const crypto = require("crypto");

function verify(publicKey, msgId, timestamp, signatureHeader, rawBody, toleranceSec = 300) {
  if (!publicKey.startsWith("whpk_") || !/^\d+$/.test(timestamp)) return false;
  if (Math.abs(Date.now() / 1000 - Number(timestamp)) > toleranceSec) return false; // reject replays
  const raw = Buffer.from(publicKey.slice("whpk_".length), "base64");
  if (raw.length !== 32) return false;
  const key = crypto.createPublicKey({
    key: { kty: "OKP", crv: "Ed25519", x: raw.toString("base64url") },
    format: "jwk",
  });
  const message = Buffer.concat([Buffer.from(`${msgId}.${timestamp}.`), rawBody]);
  // During a key rotation the header carries one "v1a,<base64>" per live key: any match is enough.
  return signatureHeader.split(" ").some((entry) => {
    const [version, sig] = entry.split(",");
    return version === "v1a" && sig !== undefined &&
      crypto.verify(null, message, key, Buffer.from(sig, "base64"));
  });
}

module.exports = { verify };

if (require.main === module) {
  const [publicKey, msgId, timestamp, signature, bodyPath] = process.argv.slice(2);
  const ok = verify(publicKey, msgId, timestamp, signature, require("fs").readFileSync(bodyPath));
  console.log(ok ? "ok" : "invalid");
  process.exit(ok ? 0 : 1);
}
