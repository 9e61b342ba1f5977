"""Passwords for the embedded stack, generated once into `<data dir>/secrets.env` (mode 600).

Values already set in the environment or `.env` win; only missing ones are generated.
"""

from __future__ import annotations

import secrets
from dataclasses import replace

from ecom.config import Settings

PASSWORD_FIELDS = (
    "pg_admin_password",
    "pg_loader_password",
    "pg_transformer_password",
    "pg_reader_password",
)


def ensure_secrets(settings: Settings) -> Settings:
    """Generate and persist any missing password; return settings that carry them all."""
    missing = [f for f in PASSWORD_FIELDS if not getattr(settings, f)]
    if not missing:
        return settings
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    path = settings.data_dir / "secrets.env"
    generated = {f: secrets.token_urlsafe(18) for f in missing}
    lines = [f"ECOM_{f.upper()}={v}\n" for f, v in generated.items()]
    with open(path, "a") as handle:
        handle.writelines(lines)
    path.chmod(0o600)
    return replace(settings, **generated)
