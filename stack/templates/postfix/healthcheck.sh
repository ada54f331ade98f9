#!/bin/sh
# Healthy means the services answer, not merely that master runs:
# TLS handshake then greeting on 465, and a completed STARTTLS on 25.
set -eu
/usr/local/bin/sasl-refresh  # side job: fresh SASL connections after a Dovecot restart (never fails)
printf 'QUIT\r\n' | timeout 5 openssl s_client -quiet -connect 127.0.0.1:465 2>/dev/null | grep -q '^220 '
printf 'QUIT\r\n' | timeout 5 openssl s_client -quiet -starttls smtp -connect 127.0.0.1:25 2>/dev/null | grep -q '^221 '
