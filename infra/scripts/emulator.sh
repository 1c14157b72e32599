# Sourced, not run: `start_emulator` starts the AWS emulator (moto's server, one thread: see
# moto_server.py) on a free 127.0.0.1 port, waits for it, exports SHOPMIND_TEST_AWS_ENDPOINT and
# dummy credentials, and stops it when the calling shell exits. It never talks beyond loopback.
start_emulator() {
    local port log
    port=$(.venv/bin/python -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    log=$(mktemp -t shopmind-moto.XXXXXX.log)
    .venv/bin/python infra/scripts/moto_server.py --host 127.0.0.1 --port "$port" >"$log" 2>&1 &
    moto_pid=$!
    trap 'kill $moto_pid 2>/dev/null || true; wait $moto_pid 2>/dev/null || true' EXIT
    for _ in $(seq 1 100); do
        if .venv/bin/python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:$port/moto-api/', timeout=1)" 2>/dev/null; then
            break
        fi
        if ! kill -0 $moto_pid 2>/dev/null; then
            echo "emulator: moto exited at start-up:" >&2; cat "$log" >&2; return 1
        fi
        sleep 0.2
    done
    export SHOPMIND_TEST_AWS_ENDPOINT="http://127.0.0.1:$port"
    export AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_REGION=us-east-1
    echo "[emulator] AWS emulator on $SHOPMIND_TEST_AWS_ENDPOINT (log: $log)"
}
