"""Passwords for the embedded stack, generated once into `<data dir>/secrets.env` (mode 600).

Values already set in the environment or `.env` win; only missing ones are generated.
"""

from __future__ import annotations

import os
import secrets

from ecom.config import ROLES, Settings, env_name


def ensure_secrets(settings: Settings) -> Settings:
    """Generate and persist any missing password; return settings that carry them all."""
    missing = [f"pg_{role}_password" for role in ROLES if not settings.password(role)]
    if not missing:
        return settings
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    path = settings.secrets_file
    generated = {f: secrets.token_urlsafe(18) for f in missing}
    lines = [f"{env_name(f)}={v}\n" for f, v in generated.items()]
    # created with mode 600 (never readable by others, not even for a moment)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    with os.fdopen(fd, "a") as handle:
        handle.writelines(lines)
    path.chmod(0o600)
    return settings.replace(**generated)
