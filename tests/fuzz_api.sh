#!/usr/bin/env bash
# Fuzzes the JSON API with schemathesis against a real `tidings serve --dev`, both inside a
# network namespace of their own that has only loopback: fuzzed rules name random hosts and
# addresses, and whatever the fuzzer makes tidings send must not leave this machine.
#
# Usage: unshare --net bash tests/fuzz_api.sh TIDINGS_BIN WORK_DIR SECONDS
# Exits 0 when schemathesis finds nothing: no 5xx, and every answer (status, headers, body)
# as the OpenAPI document says. Run by the integration test `fuzz::schemathesis_…`.
set -euo pipefail

bin=$1
work=$2
budget=$3
port=18080
base="http://127.0.0.1:$port"

ip link set lo up
mkdir -p "$work"
key=$("$bin" key create --data-dir "$work/data" --role admin --name fuzz)
"$bin" serve --dev --data-dir "$work/data" --listen "127.0.0.1:$port" >"$work/serve.log" 2>&1 &
server=$!
trap 'kill "$server" 2>/dev/null; wait "$server" 2>/dev/null || true' EXIT

# One rule for the operations on /rules/{id} to work on: without a real id they would only
# ever see 404. Its URL is a closed loopback port, so a test send fails fast.
rule=$(KEY="$key" BASE="$base" python3 - <<'EOF'
import json, os, time, urllib.request

base, key = os.environ["BASE"], os.environ["KEY"]
deadline = time.monotonic() + 30
while True:
    try:
        urllib.request.urlopen(f"{base}/healthz", timeout=2)
        break
    except OSError:
        if time.monotonic() > deadline:
            raise SystemExit("tidings serve did not answer /healthz within 30 s")
        time.sleep(0.1)
rule = {
    "name": "fuzz target",
    "trigger": {"type": "event", "events": ["ping"]},
    "webhook": {"url": "http://127.0.0.1:9/hook", "timeout_ms": 1000},
}
req = urllib.request.Request(
    f"{base}/api/v1/rules",
    data=json.dumps(rule).encode(),
    headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
)
print(json.load(urllib.request.urlopen(req, timeout=10))["id"])
EOF
)

# The document is the contract: every check schemathesis has, with two exceptions.
# - Some rules can be checked only by the server (a cron line, a time zone, a CEL condition,
#   a template, the URL policy, the merged result of a PATCH, an event key sent both in the
#   body and the header that differ): operations with such rules may answer a schema-valid
#   request with 400 (validation_failed), and do.
# - A catalog name with the prefix tidings: (reserved for tidings' own alerts) is refused with
#   400 invalid_event_type; the name's pattern does not say so, to stay a plain pattern.
# - DELETE of the one rule would leave the operations on it nothing but 404s.
cat >"$work/schemathesis.toml" <<EOF
[checks.positive_data_acceptance]
expected-statuses = [200, 201, 202, 204, 401, 403, 404, 409]

[[operations]]
include-name-regex = "^(POST|PUT|PATCH) /api/v1/(rules|rules/\\\\{id\\\\}|rules/\\\\{id\\\\}/draft|events)\$"
checks.positive_data_acceptance.expected-statuses = [200, 201, 202, 204, 400, 401, 403, 404, 409]

# A window whose \`until\` is before its \`since\` is refused; a schema cannot say so.
[[operations]]
include-name = ["GET /api/v1/deliveries", "POST /api/v1/rules/{id}/redeliver-failed"]
checks.positive_data_acceptance.expected-statuses = [200, 201, 202, 204, 400, 401, 403, 404, 409]

[[operations]]
include-name = "POST /api/v1/event-types"
checks.positive_data_acceptance.expected-statuses = [200, 201, 202, 204, 400, 401, 403, 404, 409]

[[operations]]
include-path-regex = "^/api/v1/rules/\\\\{id\\\\}"
parameters = { id = "$rule" }

[[operations]]
include-name = "DELETE /api/v1/rules/{id}"
enabled = false
EOF

start=$(date +%s)
# schemathesis keeps its cache in the current directory: the scratch one, not the tree.
cd "$work"
set +e
# Niced: the rest of the test suite runs beside it on the same cores.
nice -n 10 schemathesis --config-file "$work/schemathesis.toml" run "$base/api/v1/openapi.json" \
  --header "Authorization: Bearer $key" \
  --checks all \
  --phases examples,coverage,fuzzing \
  --max-examples 25 \
  --max-time "$budget" \
  --workers 1 \
  --request-timeout 10 \
  --suppress-health-check all \
  --generation-database none \
  --output-sanitize false \
  --no-color >"$work/schemathesis.out" 2>&1
status=$?
set -e
# On failure the server's log comes first and schemathesis' report last: a log excerpt that
# keeps only the end (as CI's does) then still shows what failed and how to reproduce it.
if [ "$status" -ne 0 ]; then
  echo "--- the server's log (last 40 lines) ---"
  tail -n 40 "$work/serve.log"
  echo "--- schemathesis ---"
fi
cat "$work/schemathesis.out"
echo "schemathesis finished in $(($(date +%s) - start)) s with exit code $status"
exit "$status"
