#!/usr/bin/env bash
# Runs the S3 integration tests (tests/it/s3.rs) against an S3 API server on loopback.
#
# moto[server] is installed from PyPI into a cached virtual environment
# ($SHELFCAST_CACHE/moto, default ~/.cache/shelfcast/moto), started on a free port of
# 127.0.0.1, given a bucket by a plain HTTP PUT, and stopped when the script exits. The tests
# get dummy credentials and the loopback endpoint, and nothing else: no request leaves the
# machine, and the AWS provider chain never looks for a metadata server.
#
# Extra arguments go to `cargo test` (e.g. `--no-fail-fast`).
set -euo pipefail
cd "$(dirname "$0")/.."

CACHE=${SHELFCAST_CACHE:-$HOME/.cache/shelfcast}
VENV="$CACHE/moto"
if ! "$VENV/bin/python" -c "import moto.server, flask, flask_cors" 2>/dev/null; then
    echo "s3_test: installing moto[server] into $VENV"
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install --quiet "moto[server]>=5,<6"
fi

PORT=$("$VENV/bin/python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
ENDPOINT="http://127.0.0.1:$PORT"
LOG=$(mktemp -t moto.XXXXXX.log)
"$VENV/bin/moto_server" -H 127.0.0.1 -p "$PORT" >"$LOG" 2>&1 &
MOTO_PID=$!
stop() {
    kill "$MOTO_PID" 2>/dev/null || true
    wait "$MOTO_PID" 2>/dev/null || true
    rm -f "$LOG"
}
trap stop EXIT

for _ in $(seq 1 100); do
    curl -fsS -o /dev/null "$ENDPOINT/moto-api/" 2>/dev/null && break
    if ! kill -0 "$MOTO_PID" 2>/dev/null; then
        echo "s3_test: moto_server did not start:" >&2
        cat "$LOG" >&2
        exit 1
    fi
    sleep 0.2
done

BUCKET=shelfcast-test
# Path-style bucket creation; moto accepts any credentials.
curl -fsS -X PUT "$ENDPOINT/$BUCKET" -o /dev/null

export SHELFCAST_S3_ENDPOINT="$ENDPOINT" SHELFCAST_S3_BUCKET="$BUCKET"
export AWS_ACCESS_KEY_ID=shelfcast-test AWS_SECRET_ACCESS_KEY=shelfcast-test AWS_REGION=us-east-1
unset AWS_SESSION_TOKEN AWS_PROFILE AWS_WEB_IDENTITY_TOKEN_FILE AWS_CONTAINER_CREDENTIALS_RELATIVE_URI
export AWS_EC2_METADATA_DISABLED=true
echo "s3_test: moto on $ENDPOINT, bucket $BUCKET"
${CARGO:-cargo} test --locked --test it "$@" s3_
