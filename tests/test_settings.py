"""Settings: defaults, file and environment layering, and errors that list every problem."""

from __future__ import annotations

from pathlib import Path

import pytest

from stack.settings import SettingsError, load_settings, unknown_environment


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "mailstack.toml"
    path.write_text(text)
    return path


def test_defaults_follow_rfc_8314_ports(tmp_path: Path) -> None:
    settings = load_settings(write(tmp_path, ""))
    assert settings.host_ports.model_dump() == {
        "smtp": 25, "submissions": 465, "submission": 587, "imaps": 993, "pop3s": 995, "imap": 143, "pop3": 110,
    }
    assert settings.addresses == ["alice@example.test", "bob@example.test"]
    assert settings.imap_plaintext and settings.pop3_plaintext


def test_file_values_are_read(tmp_path: Path) -> None:
    settings = load_settings(write(tmp_path, 'mail_domain = "corp.test"\nusers = ["Carol"]\n[host_ports]\nsmtp = 2525\n'))
    assert settings.addresses == ["carol@corp.test"]
    assert settings.host_ports.smtp == 2525 and settings.host_ports.submissions == 465


def test_environment_overrides_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MAILSTACK_HOST_PORTS__SMTP", "2526")
    monkeypatch.setenv("MAILSTACK_IMAP_PLAINTEXT", "false")
    settings = load_settings(write(tmp_path, "[host_ports]\nsmtp = 2525\n"))
    assert settings.host_ports.smtp == 2526
    assert settings.imap_plaintext is False


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        'mail_domain = "not a domain"\nusers = ["ok", "Bad User!", "ok"]\nmessage_size_limit = 5\n'
        "[host_ports]\nsmtp = 70000\n",
    )
    with pytest.raises(SettingsError) as error:
        load_settings(path)
    text = str(error.value)
    for fragment in ("mail_domain", "not a fully qualified domain name", "users", "Bad User!", "message_size_limit", "host_ports.smtp"):
        assert fragment in text, fragment


def test_duplicate_users_and_ports_are_rejected(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="users listed twice: ok"):
        load_settings(write(tmp_path, 'users = ["ok", "ok"]\n'))
    with pytest.raises(SettingsError, match="host port 25 is used by both smtp and submission"):
        load_settings(write(tmp_path, "[host_ports]\nsubmission = 25\n"))


def test_unknown_keys_are_rejected_not_ignored(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="mail_domian"):
        load_settings(write(tmp_path, 'mail_domian = "typo.test"\n'))


def test_half_written_file_names_the_file_and_line(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match=r"mailstack.toml is not valid TOML: Unclosed array \(at line 3"):
        load_settings(write(tmp_path, 'mail_domain = "a.test"\nusers = ["alice"\nhostname = "x.test"\n'))


def test_missing_explicit_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="does not exist"):
        load_settings(tmp_path / "nope.toml")


def test_malformed_environment_value_is_a_settings_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MAILSTACK_USERS", "alice")  # a list needs JSON
    with pytest.raises(SettingsError, match="MAILSTACK_USERS='\\[\"alice\",\"bob\"\\]'"):
        load_settings(write(tmp_path, ""))


def test_binary_file_and_directory_are_settings_errors(tmp_path: Path) -> None:
    path = tmp_path / "binary.toml"
    path.write_bytes(b"mail_domain = \"\xff\"\n")
    with pytest.raises(SettingsError, match="not UTF-8"):
        load_settings(path)
    with pytest.raises(SettingsError, match="is not a file"):
        load_settings(tmp_path)


def test_retry_timing_must_follow_postfix_ordering(tmp_path: Path) -> None:
    assert load_settings(write(tmp_path, "")).queue_retry.minimal_backoff == 10
    path = write(tmp_path, "[queue_retry]\nqueue_run_delay = 30\nminimal_backoff = 10\n")
    with pytest.raises(SettingsError, match="queue_run_delay <= minimal_backoff <= maximal_backoff"):
        load_settings(path)


def test_a_misspelled_environment_variable_is_an_error_with_a_suggestion(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MAILSTACK_HOST_PORT__SMTP", "2525")
    (tmp_path / "empty.toml").write_text("")
    with pytest.raises(SettingsError, match=r"MAILSTACK_HOST_PORT__SMTP \(did you mean MAILSTACK_HOST_PORTS__SMTP\?\)"):
        load_settings(tmp_path / "empty.toml")


def test_variables_of_the_harness_and_compose_are_not_settings_errors() -> None:
    environ = {"MAILSTACK_TARGET": "t.json", "MAILSTACK_BUILD_DIR": "/tmp/b", "MAILSTACK_PORT_SMTP": "25",
               "MAILSTACK_HOST_PORTS__SMTP": "2525", "MAILSTACK_QUEUE_RETRY__MINIMAL_BACKOFF": "20", "PATH": "/bin"}
    assert unknown_environment(environ) == []
    assert unknown_environment({"MAILSTACK_USER": "x"}) == ["MAILSTACK_USER (did you mean MAILSTACK_USERS?)"]


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("MAILSTACK_IMAGE_PREFIX", "brk..x", "is not a Docker image name"),
        ("MAILSTACK_BASE_IMAGE", "Bad Image!", "is not a Docker image reference"),
        ("MAILSTACK_HOSTNAME", "a" * 63 + ".example.test", "at most 64"),
        ("MAILSTACK_MAIL_DOMAIN", ".".join(["abcdefghij"] * 25) + ".test", "not a fully qualified domain name"),
    ],
)
def test_values_docker_or_x509_would_refuse_are_settings_errors(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, variable: str, value: str, message: str
) -> None:
    monkeypatch.setenv(variable, value)
    (tmp_path / "empty.toml").write_text("")
    with pytest.raises(SettingsError, match=message):
        load_settings(tmp_path / "empty.toml")


def test_a_base_image_from_a_private_registry_is_accepted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MAILSTACK_BASE_IMAGE", "registry.example:5000/debian:bookworm-slim")
    (tmp_path / "empty.toml").write_text("")
    assert load_settings(tmp_path / "empty.toml").base_image == "registry.example:5000/debian:bookworm-slim"
