#!/bin/bash
# Healthy means the protocols answer, not merely that a process runs: TLS handshake and
# greeting on 993 and 995, and the LMTP and auth listeners that Postfix depends on.
set -euo pipefail
printf 'a LOGOUT\r\n' | timeout 5 openssl s_client -quiet -connect 127.0.0.1:993 2>/dev/null | grep -q '^\* OK'
printf 'QUIT\r\n' | timeout 5 openssl s_client -quiet -connect 127.0.0.1:995 2>/dev/null | grep -q '^+OK'
greets() {  # port, expected first-line prefix
    exec 3<>"/dev/tcp/127.0.0.1/$1"
    IFS= read -r -t 5 line <&3
    exec 3<&-
    [[ $line == "$2"* ]]
}
greets 24 "220 "
greets 12345 "VERSION"
