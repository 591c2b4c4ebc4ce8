# loadtest/common.sh — what loadtest/run and loadtest/hops share; sourced, not run.
# The caller sets LOADTEST (its name, for messages) and, before starting gateways, BIN, WORK,
# PROXY_CPU, ECHO_GRPC (the backend's gRPC face) and the array PIDS (what it stops on exit).

# Installs from Debian what is missing. Arguments: COMMAND or COMMAND:PACKAGE, the command looked
# for on PATH and in /usr/sbin (where Debian puts nginx and haproxy, off a non-root PATH).
install_missing() {
    local need=() item cmd
    for item in "$@"; do
        cmd=${item%%:*}
        command -v "$cmd" >/dev/null || [ -x "/usr/sbin/$cmd" ] || need+=("${item#*:}")
    done
    [ ${#need[@]} -eq 0 ] && return 0
    printf '\n== installing %s from Debian\n' "${need[*]}" >&2
    local sudo=""
    [ "$(id -u)" -ne 0 ] && sudo=sudo
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need[@]}" >/dev/null
}

# The path of a command that may sit in /usr/sbin.
sbin_command() {
    command -v "$1" || echo "/usr/sbin/$1"
}

# Exits 2 if anything listens on one of the loopback ports given.
ports_free() {
    local port
    for port in "$@"; do
        if (exec 3<>/dev/tcp/127.0.0.1/"$port") 2>/dev/null; then
            echo "$LOADTEST: port $port is in use; stop whatever listens there first" >&2
            exit 2
        fi
    done
}

# Waits up to 10 s for the URL to answer with a success; exits 1 if it does not.
wait_http() {
    for _ in $(seq 100); do
        curl -fsS -o /dev/null "$1" 2>/dev/null && return 0
        sleep 0.1
    done
    echo "$LOADTEST: $1 did not answer" >&2
    exit 1
}

# Starts a one-shard gateway pinned to PROXY_CPU, listening on the address given; more options may
# follow it. Its pid goes into PIDS and LAST_PID. The in-flight limit is raised so that no run's
# burst is refused with 503 (the default bounds memory, which a measurement does not need).
start_switchyard() {
    local listen=$1
    shift
    taskset -c "$PROXY_CPU" "$BIN/switchyard" --listen "$listen" --shards 1 --cpus "$PROXY_CPU" \
        --max-in-flight 100000 "$@" >>"$WORK/switchyard-$listen.log" 2>&1 &
    PIDS+=($!)
    LAST_PID=$!
}

# Registers the backend's gRPC face as service `echo` (instance e1) once the gateway is ready.
register() {
    wait_http "http://$1/-/ready"
    curl -fsS -o /dev/null -X PUT -H 'content-type: application/json' \
        -d "{\"address\":\"$ECHO_GRPC\"}" "http://$1/-/services/echo/instances/e1"
}
