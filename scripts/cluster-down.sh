#!/usr/bin/env bash
# Stop the Ray head that scripts/cluster-up.sh started, and only it.
#
# `ray stop` would kill every Ray process on the machine, including other people's clusters
# and local test runs. Instead this stops the processes of the recorded session: those whose
# command line names its session dir or GCS address, plus all their descendants (workers,
# agents, dashboard modules). SIGTERM first, SIGKILL after MEDFLIP_STOP_GRACE_S [5] seconds.
# Reads $MEDFLIP_RAY_TEMP_DIR/medflip-cluster.env [/tmp/ray]; the logs stay for inspection.
set -euo pipefail

TEMP_DIR=${MEDFLIP_RAY_TEMP_DIR:-/tmp/ray}
STATE=$TEMP_DIR/medflip-cluster.env
GRACE=${MEDFLIP_STOP_GRACE_S:-5}
if [ ! -f "$STATE" ]; then
    echo "cluster-down: no cluster recorded in $STATE; nothing to stop"
    exit 0
fi
# shellcheck disable=SC1090
. "$STATE"

cluster_pids() {
    # Roots: our session's daemons. Then every descendant, found through the ppid table.
    local -A children=()
    local pid ppid cmd queue=()
    while read -r pid ppid; do
        children[$ppid]+=" $pid"
    done < <(ps -e -o pid= -o ppid=)
    for dir in /proc/[0-9]*; do
        pid=${dir#/proc/}
        cmd=$(tr '\0' ' ' 2>/dev/null <"$dir/cmdline") || continue
        case "$cmd" in
            *"$SESSION_DIR"* | *"address=$GCS_ADDRESS "*) queue+=("$pid") ;;
        esac
    done
    local -A seen=()
    while [ ${#queue[@]} -gt 0 ]; do
        pid=${queue[0]}
        queue=("${queue[@]:1}")
        [ -n "${seen[$pid]:-}" ] && continue
        [ "$pid" = "$$" ] && continue
        seen[$pid]=1
        echo "$pid"
        # shellcheck disable=SC2206
        queue+=(${children[$pid]:-})
    done
}

is_alive() {
    # A zombie (state Z) has exited; it only waits for its parent to reap it.
    local state
    state=$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null) || return 1
    [ -n "$state" ] && [ "$state" != Z ]
}

pids=$(cluster_pids | sort -un)
if [ -z "$pids" ]; then
    echo "cluster-down: no processes left for session $(basename "$SESSION_DIR")"
    rm -f "$STATE"
    exit 0
fi
echo "cluster-down: stopping session $(basename "$SESSION_DIR"): $(echo "$pids" | wc -w) processes"
# shellcheck disable=SC2086
kill -TERM $pids 2>/dev/null || true
for _ in $(seq $((GRACE * 5))); do
    alive=""
    for pid in $pids; do is_alive "$pid" && alive="$alive $pid"; done
    [ -z "$alive" ] && break
    sleep 0.2
done
if [ -n "${alive:-}" ]; then
    echo "cluster-down: SIGKILL to$alive"
    # shellcheck disable=SC2086
    kill -KILL $alive 2>/dev/null || true
fi
# Workers the raylet was still forking while we stopped it: one more sweep.
late=$(cluster_pids | sort -un)
# shellcheck disable=SC2086
[ -n "$late" ] && kill -KILL $late 2>/dev/null || true
rm -f "$STATE"
# `--address auto` reads the last `ray start`'s address from here: forget ours (as ray stop does)
current=$TEMP_DIR/ray_current_cluster
if [ -f "$current" ] && [ "$(cat "$current")" = "$GCS_ADDRESS" ]; then rm -f "$current"; fi
echo "cluster-down: stopped"
