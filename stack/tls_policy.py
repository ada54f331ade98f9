"""TLS choices shared by the Postfix and Dovecot templates, so both ends agree."""

# Mozilla "intermediate" TLS 1.2 suites restricted to ECDHE (forward secret) with AEAD.
# DHE is left out: it would need DH parameters and costs more than ECDHE.
TLS12_CIPHERS = ":".join(
    [
        "ECDHE-ECDSA-AES128-GCM-SHA256",
        "ECDHE-RSA-AES128-GCM-SHA256",
        "ECDHE-ECDSA-AES256-GCM-SHA384",
        "ECDHE-RSA-AES256-GCM-SHA384",
        "ECDHE-ECDSA-CHACHA20-POLY1305",
        "ECDHE-RSA-CHACHA20-POLY1305",
    ]
)
