#!/usr/bin/env bash
# Build the Docker images without Docker and smoke-test the CPU one (`make image-smoke`).
#
#   deploy/image-smoke.sh            # as root, from the repository root, after `make install`
#
# 1. A base image from a Debian bookworm root filesystem (debootstrap: python3.11, venv, pip
#    via ensurepip), imported with FROM scratch + ADD rootfs.tar.gz /, and passed to the
#    Dockerfiles as their PYTHON_IMAGE build arg (bookworm's Python is 3.11, as in
#    python:3.11-slim, which is itself bookworm-based).
# 2. Dockerfile.cpu, built with buildah (vfs storage, chroot isolation). torch comes from the
#    index this machine's pip is configured for: `pip download torch==2.13.0+cpu` fills a small
#    PEP 503 index, served on 127.0.0.1 for the build and passed as TORCH_INDEX_URL (set
#    TORCH_INDEX_URL yourself to use another index, e.g. https://download.pytorch.org/whl/cpu).
# 3. The CPU image run with `buildah run` (its CMD, SECRET set, the repo's fake LLM on the host
#    as AUTOINTERP_LLM__BASE_URL): the README's explain curl must answer {"explanation": ...},
#    gRPC health must say SERVING, the image's HEALTHCHECK must pass inside the container, and
#    SIGTERM must stop it with exit status 0 within the grace period.
# 4. Dockerfile.cuda, built too when the disk has room (IMAGE_SMOKE_CUDA_MIN_FREE_GB, default
#    45): it cannot run without a GPU, so the check is the build plus
#    `python -c "import autointerp_grpc.runtime"` inside it. IMAGE_SMOKE_CUDA=0 skips it.
#
# Needs root, buildah and debootstrap (installed with apt-get when missing), network access to
# a Debian mirror and a Python package index, and the repo's .venv (`make install`) for the
# fake LLM and the gRPC health client. Everything (rootfs, image store, logs) lives under
# IMAGE_SMOKE_WORK (default /var/tmp/autointerp-image-smoke), in a private vfs store, so the
# system's image store is untouched; `rm -rf` it to reclaim the space. The base rootfs and
# the images are rebuilt on every run; IMAGE_SMOKE_REUSE_BASE=1 / IMAGE_SMOKE_REUSE_CPU=1 keep
# an existing base / CPU image (to re-run only the checks).
# Traffic goes to 127.0.0.1 only (plus the mirror and the index during the builds).

set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
WORK=${IMAGE_SMOKE_WORK:-/var/tmp/autointerp-image-smoke}
VENV_PY=${IMAGE_SMOKE_VENV_PY:-$REPO/.venv/bin/python}
BASE_IMAGE=${PYTHON_IMAGE:-localhost/autointerp-base:3.11-bookworm}
CPU_IMAGE=${IMAGE_SMOKE_CPU_TAG:-localhost/autointerp:cpu}
CUDA_IMAGE=${IMAGE_SMOKE_CUDA_TAG:-localhost/autointerp:cuda}
DEBIAN_MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
CUDA=${IMAGE_SMOKE_CUDA:-1}
CUDA_MIN_FREE_GB=${IMAGE_SMOKE_CUDA_MIN_FREE_GB:-45}
READY_TIMEOUT_S=${IMAGE_SMOKE_READY_TIMEOUT_S:-300}
GRACE_S=10 # AUTOINTERP_SHUTDOWN_GRACE_S passed to the container
SECRET_VALUE=image-smoke-$(date +%s)-$RANDOM

STORE=(--storage-driver vfs --root "$WORK/storage" --runroot "$WORK/runroot")
bh() { buildah "${STORE[@]}" "$@"; }

log() { printf '\n==> %s\n' "$*"; }
die() {
    printf '\nimage-smoke: FAILED: %s\n' "$*" >&2
    exit 1
}
now() { date +%s; }
free_port() { "$VENV_PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
image_size() { bh images --format '{{.Size}}' "$1" 2>/dev/null | head -1; } # uncompressed, as `docker images`

# The server under `buildah run` (pid $1): the child of its buildah-chroot-exec helper
# (buildah run -> buildah-chroot-runtime -> buildah-chroot-exec -> the image's CMD).
server_pid() {
    ps -e -o pid=,ppid=,args= | awk -v root="$1" '
        { parent[$1] = $2; line = $0; sub(/^ *[0-9]+ +[0-9]+ +/, "", line); args[$1] = line }
        END {
            for (pid in args) {
                if (args[parent[pid]] !~ /^buildah-chroot-exec/) continue
                for (p = parent[pid]; p > 1; p = parent[p]) if (p == root) { print pid; exit }
            }
        }'
}

declare -a SUMMARY=()
summary() { SUMMARY+=("$*"); }

# --- clean-up of what this script started (by pid / container name) --------------------------
declare -a PIDS=()
declare -a CONTAINERS=()
SERVER_PID=
cleanup() {
    local pid ctr
    # The container's server first (buildah run does not forward signals), then the rest.
    [[ -n $SERVER_PID ]] && kill -TERM "$SERVER_PID" 2>/dev/null && sleep $((GRACE_S + 2))
    for pid in "${PIDS[@]}"; do
        kill -TERM "$pid" 2>/dev/null || true
    done
    for pid in "${PIDS[@]}"; do
        wait "$pid" 2>/dev/null || true
    done
    for ctr in "${CONTAINERS[@]}"; do
        bh rm "$ctr" >/dev/null 2>&1 || true
    done
}
trap cleanup EXIT

# --- 0. preflight ------------------------------------------------------------------------------
[[ $(id -u) -eq 0 ]] || die "run as root (buildah with vfs storage and chroot isolation, debootstrap)"
[[ -x $VENV_PY ]] || die "$VENV_PY missing: run \`make install\` first"
missing=()
command -v buildah >/dev/null || missing+=(buildah)
command -v debootstrap >/dev/null || missing+=(debootstrap)
if ((${#missing[@]})); then
    command -v apt-get >/dev/null || die "install: ${missing[*]}"
    log "installing ${missing[*]} with apt-get"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi
mkdir -p "$WORK"
echo "work dir: $WORK ($(df -h --output=avail "$WORK" | tail -1 | tr -d ' ') free); $(buildah --version)"

# --- 1. base image: Debian bookworm + python3.11 + venv, FROM scratch ------------------------
if [[ ${IMAGE_SMOKE_REUSE_BASE:-0} == 1 ]] && bh inspect --type image "$BASE_IMAGE" >/dev/null 2>&1; then
    log "base image $BASE_IMAGE: reused (IMAGE_SMOKE_REUSE_BASE=1)"
    summary "base image  $BASE_IMAGE: reused, $(image_size "$BASE_IMAGE")"
else
    log "base image: debootstrap bookworm ($DEBIAN_MIRROR) -> $BASE_IMAGE"
    t0=$(now)
    rm -rf "$WORK/rootfs" "$WORK/base"
    mkdir -p "$WORK/base"
    # python-is-python3: `python` on PATH, as in python:3.11-slim (the Dockerfiles call it);
    # python3.11-venv: ensurepip and the pip wheel for `python -m venv`; passwd (in minbase):
    # groupadd/useradd; ca-certificates: pip over https inside the builds.
    debootstrap --variant=minbase \
        --include=python3.11,python3.11-venv,python3-venv,python-is-python3,ca-certificates \
        bookworm "$WORK/rootfs" "$DEBIAN_MIRROR" >"$WORK/debootstrap.log" 2>&1 ||
        die "debootstrap failed, see $WORK/debootstrap.log"
    chroot "$WORK/rootfs" apt-get clean
    rm -rf "$WORK/rootfs"/var/lib/apt/lists/* "$WORK/rootfs"/usr/share/doc/* \
        "$WORK/rootfs"/usr/share/man/* "$WORK/rootfs"/usr/share/info/* \
        "$WORK/rootfs"/var/log/*.log "$WORK/rootfs"/var/cache/debconf/*-old \
        "$WORK/rootfs"/etc/hostname
    tar -C "$WORK/rootfs" --numeric-owner -czf "$WORK/base/rootfs.tar.gz" .
    rm -rf "$WORK/rootfs"
    cat >"$WORK/base/Containerfile" <<'EOF'
FROM scratch
ADD rootfs.tar.gz /
ENV LANG=C.UTF-8 \
    PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
CMD ["python3"]
EOF
    bh rmi -f "$BASE_IMAGE" >/dev/null 2>&1 || true
    bh bud --isolation chroot --format docker -t "$BASE_IMAGE" -f "$WORK/base/Containerfile" \
        "$WORK/base" >"$WORK/build-base.log" 2>&1 || die "base image build failed, see $WORK/build-base.log"
    bh run --isolation chroot "$(bh from --pull=never "$BASE_IMAGE" | tee -a "$WORK/base.ctr")" -- \
        python -c 'import sys, venv, ensurepip, ssl; print("base python", sys.version.split()[0])'
    bh rm "$(cat "$WORK/base.ctr")" >/dev/null && rm -f "$WORK/base.ctr"
    t_base=$(($(now) - t0))
    summary "base image  $BASE_IMAGE: $(image_size "$BASE_IMAGE"), built in ${t_base}s (debootstrap + import)"
fi

# --- 2. torch index for the CPU build ----------------------------------------------------------
if [[ -n ${TORCH_INDEX_URL:-} ]]; then
    TORCH_INDEX=$TORCH_INDEX_URL
    log "torch index: $TORCH_INDEX (TORCH_INDEX_URL)"
else
    log "torch index: torch==2.13.0+cpu and its dependencies via this machine's pip config, served on 127.0.0.1"
    rm -rf "$WORK/torch-index"
    mkdir -p "$WORK/torch-index/files"
    "$VENV_PY" -m pip download --only-binary=:all: -d "$WORK/torch-index/files" 'torch==2.13.0+cpu' \
        >"$WORK/torch-index-download.log" 2>&1 ||
        die "pip could not find torch==2.13.0+cpu; set TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu"
    "$VENV_PY" - "$WORK/torch-index" <<'PY'
import html, pathlib, re, sys, urllib.parse

root = pathlib.Path(sys.argv[1])
projects: dict[str, list[str]] = {}
for wheel in sorted((root / "files").glob("*.whl")):
    name = re.sub(r"[-_.]+", "-", wheel.name.split("-")[0]).lower()
    projects.setdefault(name, []).append(wheel.name)
for name, wheels in projects.items():
    page = root / "simple" / name / "index.html"
    page.parent.mkdir(parents=True, exist_ok=True)
    links = "".join(
        f'<a href="../../files/{urllib.parse.quote(w)}">{html.escape(w)}</a><br>\n' for w in wheels
    )
    page.write_text(f"<!DOCTYPE html><html><body>\n{links}</body></html>\n")
print("torch index:", ", ".join(sorted(projects)))
PY
    INDEX_PORT=$(free_port)
    "$VENV_PY" -m http.server --bind 127.0.0.1 --directory "$WORK/torch-index" "$INDEX_PORT" \
        >"$WORK/torch-index.log" 2>&1 &
    PIDS+=($!)
    TORCH_INDEX=http://127.0.0.1:$INDEX_PORT/simple
    for _ in $(seq 50); do
        curl -fsS -o /dev/null "$TORCH_INDEX/torch/" 2>/dev/null && break
        sleep 0.2
    done
fi

# RUN steps use the host's CA bundle (the one this machine's pip trusts; on a network behind a
# TLS-inspecting proxy it holds the proxy's CA). A bind mount during the build only: nothing of
# it is committed to the images.
BUILD_MOUNTS=()
CA_BUNDLE=${IMAGE_SMOKE_CA_BUNDLE:-${PIP_CERT:-$("$VENV_PY" -m pip config get global.cert 2>/dev/null || true)}}
CA_BUNDLE=${CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}
if [[ -f $CA_BUNDLE ]]; then
    BUILD_MOUNTS+=(--volume "$CA_BUNDLE:/etc/ssl/certs/ca-certificates.crt:ro")
    echo "builds trust the host's CA bundle $CA_BUNDLE (mounted, not copied)"
fi

# --- 3. the CPU image --------------------------------------------------------------------------
if [[ ${IMAGE_SMOKE_REUSE_CPU:-0} == 1 ]] && bh inspect --type image "$CPU_IMAGE" >/dev/null 2>&1; then
log "cpu image $CPU_IMAGE: reused (IMAGE_SMOKE_REUSE_CPU=1)"
cpu_size=$(image_size "$CPU_IMAGE")
summary "cpu image   $CPU_IMAGE: reused, $cpu_size"
else
log "buildah bud -f Dockerfile.cpu -> $CPU_IMAGE (log: $WORK/build-cpu.log)"
bh rmi -f "$CPU_IMAGE" >/dev/null 2>&1 || true
t0=$(now)
bh bud --isolation chroot --format docker --pull=never "${BUILD_MOUNTS[@]}" \
    --build-arg PYTHON_IMAGE="$BASE_IMAGE" --build-arg TORCH_INDEX_URL="$TORCH_INDEX" \
    -f "$REPO/Dockerfile.cpu" -t "$CPU_IMAGE" "$REPO" >"$WORK/build-cpu.log" 2>&1 ||
    { tail -40 "$WORK/build-cpu.log"; die "Dockerfile.cpu build failed, see $WORK/build-cpu.log"; }
t_cpu=$(($(now) - t0))
cpu_size=$(image_size "$CPU_IMAGE")
echo "built in ${t_cpu}s, $cpu_size"
summary "cpu image   $CPU_IMAGE: $cpu_size, Dockerfile.cpu built in ${t_cpu}s"
fi

# --- 4. run it -----------------------------------------------------------------------------------
log "run $CPU_IMAGE: its CMD, SECRET set, the fake LLM on the host"
LLM_PORT=$(free_port)
"$VENV_PY" -m autointerp_testing.fake_llm --port "$LLM_PORT" >"$WORK/fake-llm.log" 2>&1 &
PIDS+=($!)
HTTP_PORT=$(free_port)
GRPC_PORT=$(free_port)
mapfile -t CMD < <(bh inspect --type image --format '{{range .Docker.Config.Cmd}}{{println .}}{{end}}' "$CPU_IMAGE")
mapfile -t HEALTHCHECK < <(bh inspect --type image --format '{{range .Docker.Config.Healthcheck.Test}}{{println .}}{{end}}' "$CPU_IMAGE")
IMAGE_USER=$(bh inspect --type image --format '{{.Docker.Config.User}}' "$CPU_IMAGE")
echo "CMD: ${CMD[*]}; USER: $IMAGE_USER; ports: http $HTTP_PORT, grpc $GRPC_PORT, fake LLM $LLM_PORT"
ctr=$(bh from --pull=never --name "autointerp-image-smoke-$$" "$CPU_IMAGE")
CONTAINERS+=("$ctr")
# chroot isolation shares the host's network, so the ports are the host's loopback ones.
ENVS=(--env "SECRET=$SECRET_VALUE" --env "AUTOINTERP_LLM__BASE_URL=http://127.0.0.1:$LLM_PORT/v1"
    --env AUTOINTERP_HOST=127.0.0.1 --env "AUTOINTERP_HTTP__PORT=$HTTP_PORT"
    --env "AUTOINTERP_GRPC__PORT=$GRPC_PORT" --env "AUTOINTERP_SHUTDOWN_GRACE_S=$GRACE_S")
t0=$(now)
# buildah itself in the background (not the bh function, which would put a subshell between).
buildah "${STORE[@]}" run --isolation chroot "${ENVS[@]}" "$ctr" -- "${CMD[@]}" >"$WORK/run-cpu.log" 2>&1 &
RUN_PID=$!
PIDS+=("$RUN_PID")
ready=0
for _ in $(seq $((READY_TIMEOUT_S * 2))); do
    kill -0 "$RUN_PID" 2>/dev/null || { cat "$WORK/run-cpu.log"; die "the container exited before it was ready"; }
    if curl -fsS -o /dev/null "http://127.0.0.1:$HTTP_PORT/health" 2>/dev/null; then
        ready=1
        break
    fi
    sleep 0.5
done
((ready)) || { tail -40 "$WORK/run-cpu.log"; die "/health not 200 within ${READY_TIMEOUT_S}s"; }
t_ready=$(($(now) - t0))
SERVER_PID=$(server_pid "$RUN_PID")
server_uid=$( [[ -n $SERVER_PID ]] && ps -o uid= -p "$SERVER_PID" | tr -d ' ' || echo '?')
echo "ready (/health 200) after ${t_ready}s; server pid ${SERVER_PID:-?} runs as uid $server_uid"
summary "cpu run     ready in ${t_ready}s, server uid $server_uid (image USER $IMAGE_USER)"

SEED_BODY=$(cd "$REPO" && "$VENV_PY" -c 'from tests.samples import SEED_EXPLAIN_BODY; print(SEED_EXPLAIN_BODY)')
echo '$ curl -X POST http://127.0.0.1:'"$HTTP_PORT"'/v1/explain/default -H "Content-Type: application/json" -H "X-SECRET-KEY: $SECRET" -d "$SEED_EXPLAIN_BODY"'
answer=$(curl -sS -X POST "http://127.0.0.1:$HTTP_PORT/v1/explain/default" \
    -H "Content-Type: application/json" -H "X-SECRET-KEY: $SECRET_VALUE" -d "$SEED_BODY" \
    -w '\n%{http_code}')
code=${answer##*$'\n'}
answer=${answer%$'\n'*}
echo "$code $answer"
printf '%s' "$answer" | "$VENV_PY" -c 'import json, sys; d = json.load(sys.stdin); assert list(d) == ["explanation"] and isinstance(d["explanation"], str) and d["explanation"], d' ||
    die "the seed curl did not answer {\"explanation\": ...}"
[[ $code == 200 ]] || die "the seed curl answered HTTP $code"
summary "seed curl   HTTP $code $answer"

unauth=$(curl -sS -o /dev/null -w '%{http_code}' -X POST "http://127.0.0.1:$HTTP_PORT/v1/explain/default" \
    -H "Content-Type: application/json" -d "$SEED_BODY")
echo "same curl without X-SECRET-KEY: HTTP $unauth"
[[ $unauth == 401 ]] || die "without the secret the curl answered $unauth, not 401"

health=$("$VENV_PY" - "$GRPC_PORT" <<'PY'
import sys

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

with grpc.insecure_channel(f"127.0.0.1:{sys.argv[1]}") as channel:
    reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=10)
print(health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status))
PY
)
echo "grpc.health.v1.Health/Check: $health"
[[ $health == SERVING ]] || die "gRPC health is $health"
summary "grpc health $health"

if ((${#HEALTHCHECK[@]})) && [[ ${HEALTHCHECK[0]} == CMD ]]; then
    bh run --isolation chroot "${ENVS[@]}" "$ctr" -- "${HEALTHCHECK[@]:1}" ||
        die "the image's HEALTHCHECK failed inside the container"
    echo "the image's HEALTHCHECK, run inside the container: exit 0"
    summary "HEALTHCHECK exit 0 inside the container"
else
    die "the image has no HEALTHCHECK CMD (built with --format docker?)"
fi

# SIGTERM goes to the server process itself (what `docker stop` sends to the container's
# main process); `buildah run` then exits with the server's status.
log "SIGTERM to the server (grace ${GRACE_S}s)"
stop_pid=${SERVER_PID:-$RUN_PID}
t0=$(now)
kill -TERM "$stop_pid"
stopped=0
for _ in $(seq $(((GRACE_S + 5) * 10))); do
    if ! kill -0 "$RUN_PID" 2>/dev/null; then
        stopped=1
        break
    fi
    sleep 0.1
done
((stopped)) || { tail -20 "$WORK/run-cpu.log"; die "still running $((GRACE_S + 5))s after SIGTERM"; }
rc=0
wait "$RUN_PID" || rc=$?
t_stop=$(($(now) - t0))
tail -5 "$WORK/run-cpu.log"
echo "exit status $rc, ${t_stop}s after SIGTERM"
[[ $rc == 0 ]] || die "exit status $rc after SIGTERM"
summary "SIGTERM     exit $rc after ${t_stop}s (grace ${GRACE_S}s)"

# --- 5. the CUDA image: build + import ---------------------------------------------------------
if [[ $CUDA == 0 ]]; then
    log "Dockerfile.cuda: skipped (IMAGE_SMOKE_CUDA=0)"
    summary "cuda image  skipped (IMAGE_SMOKE_CUDA=0)"
else
    free_gb=$(($(df --output=avail -k "$WORK" | tail -1) / 1024 / 1024))
    if ((free_gb < CUDA_MIN_FREE_GB)); then
        log "Dockerfile.cuda: SKIPPED, only ${free_gb} GiB free under $WORK; the vfs store needs about ${CUDA_MIN_FREE_GB} GiB (IMAGE_SMOKE_CUDA_MIN_FREE_GB)"
        summary "cuda image  SKIPPED: ${free_gb} GiB free < ${CUDA_MIN_FREE_GB} GiB"
    else
        log "buildah bud -f Dockerfile.cuda -> $CUDA_IMAGE (torch from PyPI, CUDA 13.0; log: $WORK/build-cuda.log)"
        bh rmi -f "$CUDA_IMAGE" >/dev/null 2>&1 || true
        t0=$(now)
        bh bud --isolation chroot --format docker --pull=never "${BUILD_MOUNTS[@]}" \
            --build-arg PYTHON_IMAGE="$BASE_IMAGE" \
            -f "$REPO/Dockerfile.cuda" -t "$CUDA_IMAGE" "$REPO" >"$WORK/build-cuda.log" 2>&1 ||
            { tail -40 "$WORK/build-cuda.log"; die "Dockerfile.cuda build failed, see $WORK/build-cuda.log"; }
        t_cuda=$(($(now) - t0))
        cuda_size=$(image_size "$CUDA_IMAGE")
        echo "built in ${t_cuda}s, $cuda_size"
        cctr=$(bh from --pull=never --name "autointerp-image-smoke-cuda-$$" "$CUDA_IMAGE")
        CONTAINERS+=("$cctr")
        bh run --isolation chroot "$cctr" -- python -c 'import torch, autointerp_grpc.runtime; print("import autointerp_grpc.runtime: ok; torch", torch.__version__, "cuda", torch.version.cuda, "available:", torch.cuda.is_available())' ||
            die "import autointerp_grpc.runtime failed in the CUDA image"
        summary "cuda image  $CUDA_IMAGE: $cuda_size, Dockerfile.cuda built in ${t_cuda}s; import autointerp_grpc.runtime ok"
    fi
fi

log "image-smoke: PASSED"
printf '  %s\n' "${SUMMARY[@]}"
bh images
