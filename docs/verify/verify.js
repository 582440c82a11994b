// Verify a tidings webhook (scheme hmac-sha256) in Node.js, with no third-party package.
// Pass the RAW body bytes (e.g. express.raw({ type: "*/*" })), never re-serialised JSON.
const crypto = require("crypto");

function verify(secret, signatureHeader, rawBody, toleranceSec = 300) {
  const parts = signatureHeader.split(",").map((p) => p.split("="));
  const timestamps = parts.filter(([k]) => k === "t").map(([, v]) => v);
  const signatures = parts.filter(([k]) => k === "v1").map(([, v]) => v);
  if (timestamps.length !== 1 || signatures.length === 0 || !/^\d+$/.test(timestamps[0])) return false;
  const t = timestamps[0];
  if (Math.abs(Date.now() / 1000 - Number(t)) > toleranceSec) return false; // reject replays
  const expected = crypto.createHmac("sha256", secret).update(`${t}.`).update(rawBody).digest();
  // During a secret rotation the header carries one v1 per live secret: any match is enough.
  return signatures.some((s) => {
    const given = Buffer.from(s, "hex");
    return given.length === expected.length && crypto.timingSafeEqual(given, expected);
  });
}

module.exports = { verify };

if (require.main === module) {
  const [secret, header, bodyPath] = process.argv.slice(2);
  const ok = verify(secret, header, require("fs").readFileSync(bodyPath));
  console.log(ok ? "ok" : "invalid");
  process.exit(ok ? 0 : 1);
}
