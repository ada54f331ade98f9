#!/bin/sh
# PID 1 of the Dovecot container: converts mail an earlier image stored as Maildir, runs
# Dovecot, and on stop lets LMTP deliveries in flight finish before the container exits.
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

# Images before sdbox stored mail as ~/Maildir. Each such Maildir is converted once, before
# any listener opens, so no client ever sees a half-converted mailbox. dsync keeps folders,
# flags, UIDs and UIDVALIDITY (IMAP and POP3 clients download nothing again), one way only
# (`doveadm backup -R`: the Maildir is only read), into ~/sdbox.partial. Then the Maildir is
# renamed Maildir.converted and sdbox.partial becomes ~/sdbox. The order makes every stop safe:
# sdbox.partial next to a Maildir is unfinished and is made again; without one, it is complete
# and only its rename was left. If the conversion fails, Dovecot does not start and the mail
# stays where it was. It needs room for a second copy of the mail.
as_vmail() {  # home, user, command...
    vmail_home=$1 vmail_user=$2
    shift 2
    setpriv --reuid vmail --regid vmail --clear-groups env HOME="$vmail_home" USER="$vmail_user" "$@"
}
refuse() {
    echo "mailstack: $*; Dovecot not started" >&2
    exit 1
}
finish_renames() {
    for staging in /var/mail/*/*/sdbox.partial; do
        [ -d "$staging" ] && [ ! -e "${staging%.partial}" ] && [ ! -e "${staging%/sdbox.partial}/Maildir" ] || continue
        mv "$staging" "${staging%.partial}" || refuse "could not rename $staging to ${staging%.partial}"
        echo "mailstack: finished the conversion interrupted in ${staging%/sdbox.partial}" >&2
    done
}
convert_maildirs() {
    for maildir in /var/mail/*/*/Maildir; do
        [ -d "$maildir" ] || continue
        home=${maildir%/Maildir}
        user="${home##*/}@$(basename "${home%/*}")"
        staging="$home/sdbox.partial"
        [ -e "$home/sdbox" ] && refuse "$user has mail in both $maildir and $home/sdbox (an image from before sdbox ran after the conversion): merge them as user vmail with \`doveadm -o mail_location=sdbox:~/sdbox sync maildir:~/Maildir\`, or move $maildir away"
        rm -rf "$staging"
        echo "mailstack: converting $user's Maildir to sdbox" >&2
        as_vmail "$home" "$user" doveadm -o "mail_location=sdbox:$staging" backup -R maildir:~/Maildir &
        convert=$!
        stopped=""
        trap 'stopped=1; kill -TERM "$convert" 2>/dev/null' TERM INT
        wait "$convert"
        status=$?
        if [ -n "$stopped" ]; then
            wait "$convert"
            echo "mailstack: stopped while converting $user; the conversion starts over at the next start" >&2
            exit 143
        fi
        trap - TERM INT
        [ "$status" -eq 0 ] || refuse "converting $user's Maildir failed (doveadm exit $status); the mail is untouched in $maildir"
        kept="$maildir.converted"
        [ -e "$kept" ] && kept="$kept.$(date +%s)"
        mv "$maildir" "$kept" || refuse "could not rename $maildir to $kept"
        mv "$staging" "$home/sdbox" || refuse "could not rename $staging to $home/sdbox"
        echo "mailstack: $user converted ($(as_vmail "$home" "$user" doveadm mailbox status messages INBOX)); Maildir kept as $kept" >&2
    done
}
finish_renames
convert_maildirs

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
