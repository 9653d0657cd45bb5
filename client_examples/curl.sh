#!/usr/bin/env bash
# The legacy REST endpoints of autointerp, called with curl.
#
#   HTTP_BASE=http://localhost:5003 SECRET=... OPENROUTER_API_KEY=... ./client_examples/curl.sh
#
# HTTP_BASE          the REST door (default http://localhost:5003)
# SECRET             the server's shared secret; when set, every call sends X-SECRET-KEY
# OPENROUTER_API_KEY the LLM provider key passed through to the service (default: the
#                    placeholder YOUR_OPENROUTER_KEY, which the repo's fake LLM accepts)
# MODEL              explainer/scorer model (default openai/gpt-4o-mini)
#
# Request bodies accept camelCase (openrouterKey) and snake_case (openrouter_key) field names;
# responses are camelCase. Errors come back as {"detail": ..., "code": ...} with the matching
# HTTP status; `curl -f` then stops the script (use --fail-with-body instead of -f to see the
# body). The secret and the key are sent on stdin / through a file descriptor, so they never
# appear on curl's command line, and nothing here prints them.
set -euo pipefail

HTTP_BASE="${HTTP_BASE:-http://localhost:5003}"
HTTP_BASE="${HTTP_BASE%/}"
API_KEY="${OPENROUTER_API_KEY:-YOUR_OPENROUTER_KEY}"
MODEL="${MODEL:-openai/gpt-4o-mini}"

case "$API_KEY$MODEL" in
  *'"'* | *\\*)
    echo "OPENROUTER_API_KEY and MODEL must not contain quotes or backslashes" >&2
    exit 2
    ;;
esac

# curl with the shared secret (when set) read from a file descriptor: `-H @file` takes headers
# from a file, here a bash process substitution fed by the printf builtin.
rest() {
  if [[ -n "${SECRET:-}" ]]; then
    curl -fsS -H @<(printf 'X-SECRET-KEY: %s\n' "$SECRET") "$@"
  else
    curl -fsS "$@"
  fi
  echo
}

# POST the JSON body on stdin to the path in $1.
post_json() {
  rest -X POST "$HTTP_BASE$1" -H "Content-Type: application/json" --data-binary @-
}

section() {
  printf '\n== %s\n' "$*"
}

# A latent that fires on " cat": three activating records and three that stay at zero.
RECORDS='[
  {"tokens": ["The", " cat", " sat", " on", " the", " mat"], "values": [0, 0.8, 0, 0, 0, 0]},
  {"tokens": ["Stock", " prices", " fell", " today"], "values": [0, 0, 0, 0]},
  {"tokens": ["My", " cat", " chased", " a", " moth"], "values": [0, 0.9, 0, 0, 0]},
  {"tokens": ["The", " train", " left", " on", " time"], "values": [0, 0, 0, 0, 0]},
  {"tokens": ["Feed", " the", " cat", " at", " noon"], "values": [0, 0, 0.7, 0, 0]},
  {"tokens": ["We", " painted", " the", " fence"], "values": [0, 0, 0, 0]}
]'

section "GET /health (open even when SECRET is set; 503 until the model is loaded)"
curl -fsS "$HTTP_BASE/health"
echo

section "GET /openapi.json (paths listed)"
openapi="$(mktemp)"
trap 'rm -f "$openapi"' EXIT
curl -fsS -o "$openapi" "$HTTP_BASE/openapi.json"
grep -o '"/v1/[a-z/-]*"' "$openapi" | sort -u

section "POST /v1/explain/default (the legacy documented request, snake_case)"
# With the defaults (HTTP_BASE unset, SECRET unset) this is exactly the documented line:
#   curl -X POST http://localhost:5003/v1/explain/default -H "Content-Type: application/json" -d '{"activations":[{"tokens":["The"," cat"," sat"," on"," the"," mat"],"values":[0.0,0.8,0.0,0.0,0.0,0.0]},{"tokens":["I"," like"," felines"],"values":[0,0,0.9]}],"openrouter_key":"YOUR_OPENROUTER_KEY","model":"openai/gpt-4o-mini"}'
rest -X POST "$HTTP_BASE/v1/explain/default" -H "Content-Type: application/json" -d '{"activations":[{"tokens":["The"," cat"," sat"," on"," the"," mat"],"values":[0.0,0.8,0.0,0.0,0.0,0.0]},{"tokens":["I"," like"," felines"],"values":[0,0,0.9]}],"openrouter_key":"YOUR_OPENROUTER_KEY","model":"openai/gpt-4o-mini"}'

section "POST /v1/explain/default (camelCase openrouterKey)"
post_json /v1/explain/default <<JSON
{"activations": $RECORDS, "openrouterKey": "$API_KEY", "model": "$MODEL"}
JSON

section "POST /v1/score/fuzz-detection (type FUZZ, snake_case openrouter_key)"
post_json /v1/score/fuzz-detection <<JSON
{"activations": $RECORDS, "explanation": "the word cat", "openrouter_key": "$API_KEY",
 "model": "$MODEL", "type": "FUZZ"}
JSON

section "POST /v1/score/fuzz-detection (type DETECTION, camelCase openrouterKey)"
post_json /v1/score/fuzz-detection <<JSON
{"activations": $RECORDS, "explanation": "the word cat", "openrouterKey": "$API_KEY",
 "model": "$MODEL", "type": "DETECTION"}
JSON

section "POST /v1/score/embedding"
post_json /v1/score/embedding <<JSON
{"activations": $RECORDS, "explanation": "the word cat"}
JSON
