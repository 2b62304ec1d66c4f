#!/usr/bin/env bash
# The Hopline demo, one command: builds and starts the collector, the four sample
# services (gateway, user, order, email), RabbitMQ and the load generator; prints the
# UI's address; Ctrl-C stops everything, flushing what was acknowledged.
#
# RabbitMQ: AMQP_URL if set; else the broker already answering on 127.0.0.1:5672;
# else `rabbitmq-server` if it is installed (started here, stopped on exit); else
# email-service's embedded in-process queue (AMQP_URL=embedded).
# Ports: collector 4317/4318/16686, gateway 8080, user 3000 (gRPC 50051), order 3001,
# email 3002. Data and logs go to ./demo-data.
set -euo pipefail
cd "$(dirname "$0")"

echo "demo: building (release; the first build takes a few minutes) ..."
cargo xtask ui || echo "demo: the UI's wasm bundle did not build; pages are served without interactivity"
cargo build --release --locked -p hopline -p gateway -p user-service -p order-service -p email-service -p loadgen
bin="${CARGO_TARGET_DIR:-target}/release"
data="$PWD/demo-data"
mkdir -p "$data/logs"

pids=()
started_rabbitmq=""
stop_all() {
    trap - INT TERM EXIT
    echo
    echo "demo: stopping ..."
    for (( i=${#pids[@]}-1; i>=0; i-- )); do
        kill -TERM "${pids[i]}" 2>/dev/null || true
        wait "${pids[i]}" 2>/dev/null || true
    done
    if [ -n "$started_rabbitmq" ]; then
        rabbitmqctl stop >/dev/null 2>&1 || true
    fi
    echo "demo: stopped"
}
trap stop_all INT TERM EXIT

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

wait_for() { # name url
    for _ in $(seq 1 150); do
        if curl -fsS -o /dev/null "$2" 2>/dev/null; then return 0; fi
        sleep 0.2
    done
    echo "demo: $1 did not come up; see $data/logs/$1.log" >&2
    exit 1
}

if [ "${AMQP_URL:-}" = embedded ]; then
    echo "demo: queue: email-service's embedded in-process queue (AMQP_URL=embedded)"
elif [ -n "${AMQP_URL:-}" ]; then
    echo "demo: queue: RabbitMQ at $AMQP_URL (from AMQP_URL)"
elif port_open 5672; then
    export AMQP_URL="amqp://guest:guest@127.0.0.1:5672/%2f"
    echo "demo: queue: the RabbitMQ already running on 127.0.0.1:5672"
elif command -v rabbitmq-server >/dev/null 2>&1; then
    echo "demo: queue: starting the installed RabbitMQ ..."
    rabbitmq-server -detached
    started_rabbitmq=1
    for _ in $(seq 1 150); do port_open 5672 && break; sleep 0.2; done
    export AMQP_URL="amqp://guest:guest@127.0.0.1:5672/%2f"
else
    export AMQP_URL=embedded
    echo "demo: queue: no RabbitMQ here, using email-service's embedded in-process queue (same trace headers)"
fi

# Tokens, as a deployment would have them: the services write with one, the UI
# reads with the other. New ones each run, in a file only this user can read.
umask 077
token() { head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n'; }
ingest_token=$(token)
query_token=$(token)
printf 'ingest_tokens = ["%s"]\nquery_tokens = ["%s"]\n' "$ingest_token" "$query_token" >"$data/tokens.toml"
umask 022
export OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:4318"
export OTEL_EXPORTER_OTLP_HEADERS="authorization=Bearer%20$ingest_token"
start() { # name command...
    local name=$1; shift
    "$@" >"$data/logs/$name.log" 2>&1 &
    pids+=($!)
}

start hopline "$bin/hopline" --data-dir "$data/hopline" --tokens-file "$data/tokens.toml"
wait_for hopline http://127.0.0.1:16686/health
DATABASE_URL="sqlite:$data/user-service.db" start user-service "$bin/user-service"
DATABASE_URL="sqlite:$data/order-service.db" start order-service "$bin/order-service"
DATABASE_URL="sqlite:$data/email-service.db" start email-service "$bin/email-service"
start gateway "$bin/gateway"
for service in user-service:3000 order-service:3001 email-service:3002 gateway:8080; do
    wait_for "${service%%:*}" "http://127.0.0.1:${service##*:}/health"
done

cat <<TXT

  Hopline is running.
    UI and query API   http://localhost:16686   (sign in with the query token below;
                       curl -H "Authorization: Bearer \$token" .../api/services)
    query token        $query_token   (also in $data/tokens.toml)
    gateway            http://localhost:8080    (POST /api/users, POST /api/orders)
    OTLP               grpc://localhost:4317, http://localhost:4318
    logs               $data/logs/
  The load generator sends 5 requests/s with faults mixed in. Ctrl-C stops everything.

TXT
"$bin/loadgen" --gateway http://127.0.0.1:8080 &
pids+=($!)
wait "${pids[-1]}"
