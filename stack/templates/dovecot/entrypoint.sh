#!/bin/sh
# PID 1 of the Dovecot container: runs Dovecot, and on stop lets LMTP deliveries in flight
# finish before the container exits.
#
# Why: Dovecot 2.3 answers an LMTP delivery that was saved while it shuts down with
# "421 Shutting down" instead of 250, so Postfix retries and the message arrives twice.
# With shutdown_clients = no, stopping the master lets each lmtp process finish its
# session (it stops accepting new ones), and this script waits for them - bounded, well
# inside compose's stop_grace_period - because when PID 1 exits the kernel kills the rest.
set -u
DRAIN_TENTHS=60

dovecot -F &
master=$!
trap 'kill -TERM "$master" 2>/dev/null' TERM INT
wait "$master"
status=$?
if kill -0 "$master" 2>/dev/null; then  # wait returned for the trapped signal
    wait "$master"
    status=0
fi

lmtp_running() {
    for stat in /proc/[0-9]*/stat; do
        # /proc/<pid>/stat: "pid (comm) state ..."; zombies (Z) have finished.
        case "$(cat "$stat" 2>/dev/null)" in *"(lmtp) "[!Z]*) return 0 ;; esac
    done
    return 1
}
tenths=0
while lmtp_running && [ "$tenths" -lt "$DRAIN_TENTHS" ]; do
    sleep 0.1
    tenths=$((tenths + 1))
done
exit "$status"
