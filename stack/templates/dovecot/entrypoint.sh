#!/bin/sh
# PID 1 of the Dovecot container: runs Dovecot, and on stop lets LMTP deliveries in flight
# finish before the container exits.
#
# Why: Dovecot 2.3 answers an LMTP delivery that was saved while it shuts down with
# "421 Shutting down" instead of 250, so Postfix retries and the message arrives twice.
# With shutdown_clients = no, stopping the master does not signal the lmtp processes: each
# finishes the transaction it is in. Everything else (auth, logins, IMAP/POP3 sessions)
# is stopped at once, so no listener keeps accepting connections nobody will answer
# (Postfix's SASL would hang until its client timed out). Then this script waits for the
# lmtp processes, briefly: when PID 1 exits, the kernel kills whatever is left.
set -u
DRAIN_TENTHS=20

dovecot -F &
master=$!
trap 'kill -TERM "$master" 2>/dev/null' TERM INT
wait "$master"
status=$?
if kill -0 "$master" 2>/dev/null; then  # wait returned for the trapped signal
    wait "$master"
    status=0
fi

# /proc/<pid>/stat is "pid (comm) state ...": the process name, and Z for finished ones.
signal_all_but_lmtp() {
    for stat in /proc/[0-9]*/stat; do
        case "$(cat "$stat" 2>/dev/null)" in
            *" (auth) "[!Z]* | *" (imap-login) "[!Z]* | *" (pop3-login) "[!Z]* | *" (imap) "[!Z]* | *" (pop3) "[!Z]*)
                pid=${stat#/proc/}
                kill -TERM "${pid%/stat}" 2>/dev/null ;;
        esac
    done
}
lmtp_running() {
    for stat in /proc/[0-9]*/stat; do
        case "$(cat "$stat" 2>/dev/null)" in *" (lmtp) "[!Z]*) return 0 ;; esac
    done
    return 1
}
signal_all_but_lmtp
tenths=0
while lmtp_running && [ "$tenths" -lt "$DRAIN_TENTHS" ]; do
    sleep 0.1
    tenths=$((tenths + 1))
done
exit "$status"
