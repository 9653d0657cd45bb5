#!/usr/bin/env bash
# The autointerp gRPC service, called with grpcurl (https://github.com/fullstorydev/grpcurl).
#
#   GRPC_TARGET=localhost:50051 SECRET=... OPENROUTER_API_KEY=... ./client_examples/grpcurl.sh
#
# No .proto files are needed: grpcurl reads the schema through the server's reflection service.
#
# GRPC_TARGET        host:port of the gRPC door (default localhost:50051); plaintext, no TLS
# SECRET             the server's shared secret; when set, every call sends x-secret-key
# OPENROUTER_API_KEY the LLM provider key passed through to the service (default: the
#                    placeholder YOUR_OPENROUTER_KEY, which the repo's fake LLM accepts)
# MODEL              explainer/scorer model (default openai/gpt-4o-mini)
#
# Request bodies go to grpcurl on stdin (-d @), so the key never appears on its command line.
# Not run by the test suite (grpcurl is not installed there); it is only syntax-checked.
set -euo pipefail

GRPC_TARGET="${GRPC_TARGET:-localhost:50051}"
API_KEY="${OPENROUTER_API_KEY:-YOUR_OPENROUTER_KEY}"
MODEL="${MODEL:-openai/gpt-4o-mini}"
SERVICE=autointerp.v1.AutoInterp

if ! command -v grpcurl >/dev/null 2>&1; then
  echo "grpcurl is not installed; see https://github.com/fullstorydev/grpcurl#installation" >&2
  exit 127
fi

case "$API_KEY$MODEL" in
  *'"'* | *\\*)
    echo "OPENROUTER_API_KEY and MODEL must not contain quotes or backslashes" >&2
    exit 2
    ;;
esac

opts=(-plaintext)
if [[ -n "${SECRET:-}" ]]; then
  # The same header as -H "x-secret-key: $SECRET", but with -expand-headers grpcurl substitutes
  # ${SECRET} from its environment itself, so the secret stays off the command line. -H (not
  # -rpc-header) also sends it on reflection calls, which the server leaves open anyway.
  export SECRET
  # shellcheck disable=SC2016  # ${SECRET} is expanded by grpcurl, not by the shell
  opts+=(-H 'x-secret-key: ${SECRET}' -expand-headers)
fi

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

section "list services (reflection)"
grpcurl "${opts[@]}" "$GRPC_TARGET" list

section "list $SERVICE methods"
grpcurl "${opts[@]}" "$GRPC_TARGET" list "$SERVICE"

section "describe $SERVICE and a request message"
grpcurl "${opts[@]}" "$GRPC_TARGET" describe "$SERVICE"
grpcurl "${opts[@]}" "$GRPC_TARGET" describe autointerp.v1.ScoreFuzzDetectionRequest

section "health check (grpc.health.v1; open even when SECRET is set)"
grpcurl -plaintext -d '{"service": ""}' "$GRPC_TARGET" grpc.health.v1.Health/Check
grpcurl -plaintext -d "{\"service\": \"$SERVICE\"}" "$GRPC_TARGET" grpc.health.v1.Health/Check

section "ExplainDefault"
grpcurl "${opts[@]}" -max-time 180 -d @ "$GRPC_TARGET" "$SERVICE/ExplainDefault" <<JSON
{"activations": $RECORDS, "openrouter_key": "$API_KEY", "model": "$MODEL"}
JSON

section "ScoreFuzzDetection (FUZZ)"
grpcurl "${opts[@]}" -max-time 180 -d @ "$GRPC_TARGET" "$SERVICE/ScoreFuzzDetection" <<JSON
{"activations": $RECORDS, "explanation": "the word cat", "openrouterKey": "$API_KEY",
 "model": "$MODEL", "type": "FUZZ"}
JSON

section "ScoreFuzzDetection (DETECTION)"
grpcurl "${opts[@]}" -max-time 180 -d @ "$GRPC_TARGET" "$SERVICE/ScoreFuzzDetection" <<JSON
{"activations": $RECORDS, "explanation": "the word cat", "openrouterKey": "$API_KEY",
 "model": "$MODEL", "type": "DETECTION"}
JSON

section "ScoreEmbedding"
grpcurl "${opts[@]}" -max-time 180 -d @ "$GRPC_TARGET" "$SERVICE/ScoreEmbedding" <<JSON
{"activations": $RECORDS, "explanation": "the word cat"}
JSON
