"""Password redaction (clonestore.secrets): only the password components of URLs and
password settings are replaced, whatever else the text holds."""

from __future__ import annotations

from clonestore.secrets import redact, redact_url


def test_redact_replaces_only_password_components() -> None:
    """A short password leaves words containing it alone ("port" stays "port"); the
    password of a URL (raw or URL-encoded) and password=... settings (quoted or not) in
    the text become ***."""
    assert redact('connection to server at "127.0.0.1", port 1 failed', "p") == (
        'connection to server at "127.0.0.1", port 1 failed'
    )
    assert redact("could not reach postgresql://app:p@db:5432/x: port 5432", "p") == (
        "could not reach postgresql://app:***@db:5432/x: port 5432"
    )
    assert redact("mariadb://root:p%40ss@h/ refused", "p@ss") == "mariadb://root:***@h/ refused"
    assert redact("invalid dsn: host=h password='a b' port=1", "a b") == (
        "invalid dsn: host=h password=*** port=1"
    )
    assert redact("url?sslmode=x&password=hunter2&a=1") == "url?sslmode=x&password=***&a=1"


def test_redact_url_keeps_a_url_without_secrets_as_given() -> None:
    """redact_url() replaces the user info's password and password parameters only."""
    assert redact_url("postgresql://app:pw@db/x?port=5") == "postgresql://app:***@db/x?port=5"
    assert redact_url("sqlite:///p/port.db") == "sqlite:///p/port.db"
