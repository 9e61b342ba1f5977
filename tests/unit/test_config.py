"""Settings: typed, from the environment then `.env` then `secrets.env`, never showing a
password, and a wrong value explained in one sentence."""

from __future__ import annotations

import stat
import subprocess
import sys
from pathlib import Path

import pytest

import ecom.config
from ecom.config import Settings, load_settings
from ecom.errors import UserError
from ecom.stack.secrets import ensure_secrets

PASSWORDS = {f"ECOM_PG_{role}_PASSWORD": f"pw-{role.lower()}-Zq9" for role in
             ("ADMIN", "LOADER", "TRANSFORMER", "READER", "MONITOR")}
WEBHOOK = {"ECOM_ALERT_WEBHOOK_URL": "https://hooks.example.org/services/T0/B0/s3cr3t-Zq9"}


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A repository root of our own (its `.env`), so the developer's files stay out."""
    monkeypatch.setattr(ecom.config, "REPO_ROOT", tmp_path)
    return tmp_path


def test_printing_the_settings_shows_no_password(repo: Path) -> None:
    settings = Settings.from_env({**PASSWORDS, **WEBHOOK, "ECOM_DATA_DIR": str(repo / "data")})
    assert settings.password("loader") == PASSWORDS["ECOM_PG_LOADER_PASSWORD"]
    secrets = {**PASSWORDS, **WEBHOOK}
    for text in (repr(settings), str(settings), f"{settings}", str(settings.model_dump())):
        for secret in secrets.values():
            assert secret not in text
    assert not set(secrets.values()) & set(settings.as_env(secrets=False).values())
    assert set(settings.secret_names()) == {
        *secrets, "ECOM_KAFKA_SASL_PASSWORD", "ECOM_KAFKA_SSL_KEY_PASSWORD"}
    assert settings.as_env()["ECOM_ALERT_WEBHOOK_URL"] == WEBHOOK["ECOM_ALERT_WEBHOOK_URL"]


def test_load_settings_prints_no_password(monkeypatch: pytest.MonkeyPatch,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    for key, value in PASSWORDS.items():
        monkeypatch.setenv(key, value)
    print(load_settings())
    out = capsys.readouterr().out
    assert "pg_loader_password=SecretStr('**********')" in out
    assert not any(password in out for password in PASSWORDS.values())


@pytest.mark.parametrize(("variable", "value", "expected"), [
    ("ECOM_PG_PORT", "abc", "ECOM_PG_PORT='abc' is not valid: it must be a whole number."),
    ("ECOM_KAFKA_MODE", "cloud",
     "ECOM_KAFKA_MODE='cloud' is not valid: use one of 'embedded', 'external'."),
    ("ECOM_PG_SSLMODE", "maybe", "ECOM_PG_SSLMODE='maybe' is not valid: use one of"),
    ("ECOM_SPARK_CLASS_ARCHIVE", "perhaps", "it must be true or false"),
    ("ECOM_MAX_REJECT_RATIO", "2", "ECOM_MAX_REJECT_RATIO='2' is not valid: it must be at most 1"),
    ("ECOM_PG_PORT", "70000", "it must be at most 65535"),
])
def test_a_wrong_value_is_one_sentence_naming_the_variable(
        repo: Path, variable: str, value: str, expected: str) -> None:
    with pytest.raises(UserError) as caught:
        Settings.from_env({variable: value})
    message = str(caught.value)
    assert expected in message
    assert "\n" not in message and "validation error" not in message


def test_a_wrong_password_value_is_never_echoed(repo: Path) -> None:
    with pytest.raises(UserError) as caught:
        Settings().replace(pg_loader_password=["s3cr3t-xyz", "text"])
    assert "ECOM_PG_LOADER_PASSWORD is not valid" in str(caught.value)
    assert "s3cr3t-xyz" not in str(caught.value)


def test_environment_then_dotenv_then_secrets_file(repo: Path) -> None:
    data = repo / "data"
    data.mkdir()
    (repo / ".env").write_text(
        f"ECOM_DATA_DIR={data}\n"
        "ECOM_PG_HOST=db.example  # an inline comment is not part of the value\n"
        "ECOM_PG_DATABASE=from_dotenv\n"
        "ECOM_PG_LOADER_PASSWORD=from_dotenv\n"
        "ECOM_EVENTS_PARTITIONS=\n")  # empty: the default
    (data / "secrets.env").write_text(
        "ECOM_PG_LOADER_PASSWORD=from_secrets\nECOM_PG_READER_PASSWORD=from_secrets\n")
    settings = Settings.from_env({"ECOM_PG_DATABASE": "from_env"})
    assert settings.data_dir == data
    assert settings.pg_host == "db.example"
    assert settings.pg_database == "from_env"
    assert settings.password("loader") == "from_dotenv"
    assert settings.password("reader") == "from_secrets"
    assert settings.events_partitions == 3


def test_a_plain_settings_object_reads_no_environment(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ECOM_PG_PORT", "1")
    assert Settings().pg_port == 55432
    assert load_settings().pg_port == 1


def test_generated_secrets_file_is_private(repo: Path) -> None:
    settings = ensure_secrets(Settings.from_env({"ECOM_DATA_DIR": str(repo / "data")}))
    mode = stat.S_IMODE(settings.secrets_file.stat().st_mode)
    assert mode == 0o600
    assert all(settings.password(role) for role in ("admin", "loader", "transformer",
                                                    "reader"))
    again = Settings.from_env({"ECOM_DATA_DIR": str(repo / "data")})
    assert again.password("reader") == settings.password("reader")


def _ecom(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "ecom_app.cli", *args], env=env, text=True,
                          capture_output=True, timeout=120, check=False)


def test_ecom_env_hides_passwords_unless_asked(tmp_path: Path) -> None:
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path),
           "ECOM_DATA_DIR": str(tmp_path), **PASSWORDS}
    hidden = _ecom("env", env=env)
    assert hidden.returncode == 0, hidden.stderr
    assert "export ECOM_PG_HOST='127.0.0.1'" in hidden.stdout
    assert not any(password in hidden.stdout for password in PASSWORDS.values())
    assert "--show-secrets" in hidden.stdout
    shown = _ecom("env", "--show-secrets", env=env)
    assert "export ECOM_PG_LOADER_PASSWORD='pw-loader-Zq9'" in shown.stdout


def test_the_cli_reports_a_bad_setting_in_one_line(tmp_path: Path) -> None:
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "ECOM_DATA_DIR": str(tmp_path),
           "ECOM_PG_PORT": "abc"}
    proc = _ecom("stack", "status", env=env)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert "ECOM_PG_PORT='abc' is not valid: it must be a whole number." in proc.stderr
