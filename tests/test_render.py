"""Rendering: each port's settings are in the output, secrets stay out, nothing is silently empty."""

from __future__ import annotations

import json
import re
import stat
from pathlib import Path

import pytest
from jinja2 import UndefinedError

from stack.credentials import Credential, load_or_create_credentials
from stack.layout import BuildLayout
from stack.images import REPO_ROOT
from stack.pki import ensure_pki
from stack.render import (
    render_compose_env,
    render_contexts,
    render_service_config,
    render_target,
    template_values,
)
from stack.settings import Settings, load_settings


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    (tmp_path / "empty.toml").write_text("")
    return load_settings(tmp_path / "empty.toml")


@pytest.fixture
def layout(tmp_path: Path, settings: Settings) -> BuildLayout:
    layout = BuildLayout(tmp_path / "build")
    ensure_pki(layout.pki.directory, settings.hostname)
    credentials = load_or_create_credentials(layout.credentials, settings.addresses, settings.password_rounds)
    render_contexts(settings, layout, credentials)
    render_compose_env(settings, layout)
    render_target(settings, layout, credentials)
    return layout


def service_block(master_cf: str, service: str) -> str:
    """One service line of master.cf with its '-o' continuation lines."""
    match = re.search(rf"^{service}\s+inet\s.*?(?=^\S|\Z)", master_cf, re.M | re.S)
    assert match, f"no {service} service in master.cf"
    return match.group(0)


def config(settings: Settings, service: str, name: str) -> str:
    """One rendered file, with placeholder hashes (rendering itself is pure)."""
    credentials = {a: Credential("pw", "{SHA512-CRYPT}$6$salt$hash") for a in settings.addresses}
    return render_service_config(service, template_values(settings, credentials))[name].decode()


def test_port_25_offers_starttls_without_auth(settings: Settings) -> None:
    main_cf = config(settings, "postfix", "main.cf")
    block = service_block(config(settings, "postfix", "master.cf"), "smtp")
    assert "smtpd_tls_security_level = may" in main_cf
    assert "smtpd_sasl_auth_enable = no" in main_cf
    assert "sasl_auth_enable=yes" not in block and "wrappermode" not in block
    assert "smtpd_relay_restrictions = permit_mynetworks, permit_sasl_authenticated, reject_unauth_destination" in main_cf


def test_port_25_refuses_our_domain_as_sender(settings: Settings) -> None:
    main_cf = config(settings, "postfix", "main.cf")
    assert "smtpd_sender_restrictions = check_sender_access texthash:/etc/postfix/sender_access" in main_cf
    # Needs SASL, which 25 does not enable: Postfix would ignore it with a warning.
    assert "reject_unauthenticated_sender_login_mismatch" not in main_cf.split("#")[0]
    access = config(settings, "postfix", "sender_access")
    assert re.search(rf"^{re.escape(settings.mail_domain)} REJECT 5\.7\.1 ", access, re.M)


def test_no_reverse_lookup_before_the_greeting(settings: Settings) -> None:
    # Every client is the Docker gateway; a lost PTR query held greetings for 5 s.
    assert re.search(r"^smtpd_peername_lookup = no$", config(settings, "postfix", "main.cf"), re.M)


def test_retry_timing_comes_from_settings(tmp_path: Path) -> None:
    empty = tmp_path / "empty.toml"
    empty.write_text("")
    tuned = load_settings(empty, queue_retry={"queue_run_delay": 5, "minimal_backoff": 7,
                                                                 "maximal_backoff": 60})
    main_cf = config(tuned, "postfix", "main.cf")
    assert "queue_run_delay = 5s\nminimal_backoff_time = 7s\nmaximal_backoff_time = 60s" in main_cf
    assert re.search(r"^service_throttle_time = 5s$", main_cf, re.M)  # submission back soon after Dovecot


def test_postfix_renews_sasl_connections_after_a_dovecot_restart(settings: Settings) -> None:
    script = config(settings, "postfix", "sasl-refresh.sh")
    assert "SASL_PORT_HEX=3039" in script and 0x3039 == 12345 and "postfix reload" in script
    assert "/usr/local/bin/sasl-refresh" in config(settings, "postfix", "healthcheck.sh")
    assert "COPY sasl-refresh.sh /usr/local/bin/sasl-refresh" in (REPO_ROOT / "Dockerfile.postfix").read_text()


def test_dovecot_drains_lmtp_on_stop(settings: Settings) -> None:
    assert re.search(r"^shutdown_clients = no$", config(settings, "dovecot", "dovecot.conf"), re.M)
    assert "(lmtp)" in config(settings, "dovecot", "entrypoint.sh")


def test_465_is_implicit_tls_with_auth_required(settings: Settings) -> None:
    block = service_block(config(settings, "postfix", "master.cf"), "submissions")
    for option in ("smtpd_tls_wrappermode=yes", "smtpd_sasl_auth_enable=yes", "smtpd_relay_restrictions=permit_sasl_authenticated,reject"):
        assert f"-o {option}" in block


def test_465_sends_no_session_ticket_before_its_greeting(settings: Settings) -> None:
    """Postfix only leaves OpenSSL's ticket count alone where tickets are off, so both halves are needed."""
    block = service_block(config(settings, "postfix", "master.cf"), "submissions")
    assert "-o tls_ssl_options=NO_TICKET" in block
    for other in ("smtp", "submission"):
        assert "NO_TICKET" not in service_block(config(settings, "postfix", "master.cf"), other)
    main_cf = config(settings, "postfix", "main.cf")
    assert "tls_config_file = /etc/postfix/openssl.cnf" in main_cf and "tls_config_name = postfix" in main_cf
    openssl_cnf = config(settings, "postfix", "openssl.cnf")
    assert re.search(r"^postfix = (\S+)$", openssl_cnf, re.M) and "NumTickets = 0" in openssl_cnf


def test_587_requires_starttls_before_auth(settings: Settings) -> None:
    block = service_block(config(settings, "postfix", "master.cf"), "submission")
    for option in ("smtpd_tls_security_level=encrypt", "smtpd_tls_auth_only=yes", "smtpd_sasl_auth_enable=yes"):
        assert f"-o {option}" in block


def test_no_service_is_chrooted(settings: Settings) -> None:
    for line in config(settings, "postfix", "master.cf").splitlines():
        if line and not line.startswith(("#", " ")):
            assert line.split()[4] == "n", line


def test_tls_floor_and_forward_secrecy_on_both_servers(settings: Settings) -> None:
    main_cf = config(settings, "postfix", "main.cf")
    dovecot = config(settings, "dovecot", "dovecot.conf")
    assert "smtpd_tls_protocols = >=TLSv1.2" in main_cf and "smtpd_tls_mandatory_protocols = >=TLSv1.2" in main_cf
    assert "ssl_min_protocol = TLSv1.2" in dovecot and "ssl = required" in dovecot
    ciphers = re.search(r"^ssl_cipher_list = (.*)$", dovecot, re.M).group(1)  # type: ignore[union-attr]
    assert all(c.startswith("ECDHE-") for c in ciphers.split(":"))
    assert f"tls_high_cipherlist = {ciphers}" in main_cf


def test_smuggling_protections_are_on(settings: Settings) -> None:
    main_cf = config(settings, "postfix", "main.cf")
    assert "smtpd_forbid_bare_newline = normalize" in main_cf
    assert "smtpd_forbid_unauth_pipelining = yes" in main_cf


def test_dovecot_listeners_follow_the_plaintext_switches(settings: Settings) -> None:
    on = config(settings, "dovecot", "dovecot.conf")
    off = config(settings.model_copy(update={"imap_plaintext": False, "pop3_plaintext": False}), "dovecot", "dovecot.conf")
    assert re.search(r"inet_listener imap \{\s+port = 143", on) and re.search(r"inet_listener pop3 \{\s+port = 110", on)
    assert re.search(r"inet_listener imap \{\s+port = 0", off) and re.search(r"inet_listener pop3 \{\s+port = 0", off)
    for conf in (on, off):
        assert re.search(r"inet_listener imaps \{\s+port = 993\s+ssl = yes", conf)
        assert re.search(r"inet_listener pop3s \{\s+port = 995\s+ssl = yes", conf)
    assert "pop3s" not in re.search(r"^protocols = (.*)$", on, re.M).group(1)  # type: ignore[union-attr]


def test_postfix_recipients_and_sasl_come_from_settings(settings: Settings) -> None:
    custom = settings.model_copy(update={"mail_domain": "corp.test", "users": ["carol"], "dovecot_service": "imapd"})
    assert config(custom, "postfix", "vmailbox").splitlines()[-1] == "carol@corp.test OK"
    main_cf = config(custom, "postfix", "main.cf")
    assert "smtpd_sasl_path = inet:imapd:12345" in main_cf and "virtual_transport = lmtp:inet:imapd:24" in main_cf


def test_contexts_hold_no_cleartext_password_and_no_ca_key(layout: BuildLayout, settings: Settings) -> None:
    credentials = json.loads(layout.credentials.read_text())
    ca_key = layout.pki.root_key.read_bytes()
    for service in ("postfix", "dovecot"):
        for path in layout.context(service).rglob("*"):
            if path.is_file():
                data = path.read_bytes()
                assert ca_key not in data and layout.pki.intermediate_key.read_bytes() not in data
                for entry in credentials.values():
                    assert entry["password"].encode() not in data, path
    users = (layout.context("dovecot") / "conf" / "users").read_text()
    assert users.count("{SHA512-CRYPT}$6$") == len(settings.users)


def test_context_file_modes(layout: BuildLayout) -> None:
    for service in ("postfix", "dovecot"):
        for key in ("server.key", "server-rsa.key"):
            assert stat.S_IMODE((layout.context(service) / "tls" / key).stat().st_mode) == 0o600
        assert stat.S_IMODE((layout.context(service) / "healthcheck.sh").stat().st_mode) == 0o755
    assert stat.S_IMODE((layout.context("dovecot") / "entrypoint.sh").stat().st_mode) == 0o755
    assert stat.S_IMODE((layout.context("dovecot") / "conf" / "users").stat().st_mode) == 0o640
    assert stat.S_IMODE(layout.target.stat().st_mode) == 0o600
    assert stat.S_IMODE(layout.credentials.stat().st_mode) == 0o600


def test_rerender_is_byte_identical(layout: BuildLayout, settings: Settings) -> None:
    """Same settings, same files: the image build cache stays warm."""
    before = {p: p.read_bytes() for p in layout.context("dovecot").rglob("*") if p.is_file()}
    credentials = load_or_create_credentials(layout.credentials, settings.addresses, settings.password_rounds)
    render_contexts(settings, layout, credentials)
    assert {p: p.read_bytes() for p in layout.context("dovecot").rglob("*") if p.is_file()} == before


def test_compose_env_and_target_carry_the_host_ports(layout: BuildLayout) -> None:
    env = layout.compose_env.read_text()
    assert "MAILSTACK_PORT_SUBMISSIONS=465" in env and "MAILSTACK_DOVECOT_IMAGE=mailstack/dovecot:latest" in env
    target = json.loads(layout.target.read_text())
    assert target["host"] == "127.0.0.1" and target["ports"]["submission"] == 587
    assert Path(target["ca_file"]).is_file()


def test_a_template_typo_fails_instead_of_rendering_empty() -> None:
    with pytest.raises(UndefinedError):
        render_service_config("postfix", {"hostname": "only.this.test"})


def test_a_user_named_postmaster_gets_their_own_mail(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MAILSTACK_USERS", '["alice", "postmaster"]')
    (tmp_path / "empty.toml").write_text("")
    aliases = config(load_settings(tmp_path / "empty.toml"), "postfix", "virtual_aliases")
    assert "postmaster@" not in aliases
    assert "abuse@example.test alice@example.test" in aliases
