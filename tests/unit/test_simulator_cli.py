"""`ecom simulate` as a user runs it, into files (no broker): options, stopping, errors."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ecom.config import REPO_ROOT
from simulator.manifest import load_manifest


def _env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ECOM_")}
    env["ECOM_DATA_DIR"] = str(tmp_path / "data")
    return env


def test_cli_backfill_to_a_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from ecom_app.cli import app

    monkeypatch.setenv("ECOM_DATA_DIR", str(tmp_path / "data"))
    out = tmp_path / "events.jsonl"
    result = CliRunner().invoke(app, [
        "simulate", "backfill", "--days", "2", "--events-per-day", "500", "--end-date",
        "2026-03-01", "--seed", "8", "--bad-rate", "0.05", "--bad-class", "invalid_json",
        "--bad-class", "oversize", "--users", "100", "--products", "50", "-o", str(out),
        "--no-progress"])
    assert result.exit_code == 0, result.output
    manifests = list((tmp_path / "data" / "manifests").glob("*.json"))
    assert len(manifests) == 1 and "seed8" in manifests[0].name
    manifest = load_manifest(manifests[0])
    assert manifest.parameters["end_date"] == "2026-03-01"
    assert {k for k, v in manifest.bad_events_by_class.items() if v} == {"invalid_json",
                                                                         "oversize"}
    assert manifest.messages_acknowledged == len(out.read_bytes().splitlines())
    assert "manifest:" in result.output and "valid events" in result.output


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_live_run_stops_cleanly_and_keeps_its_manifest(tmp_path: Path, sig: int) -> None:
    out, manifest_path = tmp_path / "live.jsonl", tmp_path / "live.json"
    proc = subprocess.Popen(
        [sys.executable, "-m", "ecom_app.cli", "simulate", "live", "--rate", "400", "--seed", "3",
         "--bad-rate", "0.05", "--output", str(out), "--manifest", str(manifest_path),
         "--no-progress"],
        cwd=REPO_ROOT, env=_env(tmp_path), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and (not out.exists() or out.stat().st_size < 50_000):
        time.sleep(0.1)
    proc.send_signal(sig)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 0, stderr
    manifest = load_manifest(manifest_path)
    data = out.read_bytes()
    assert manifest.status == "complete" and manifest.mode == "live"
    assert manifest.messages_acknowledged == len(data.splitlines()) > 0
    assert manifest.stream_sha256 == hashlib.sha256(data).hexdigest()
    assert "live simulation (complete)" in stdout


def test_user_errors_are_one_clear_line(tmp_path: Path) -> None:
    today = datetime.now(UTC).date().isoformat()
    cases = [
        (["backfill", "--end-date", today], "is not in the past"),
        (["backfill", "--bad-rate", "0.9"], "--bad-rate must be in [0, 0.5)"),
        (["live", "--rate", "0", "--duration", "1"], "--rate must be > 0"),
        (["backfill", "--output", str(tmp_path)], "Is a directory"),
        (["backfill", "--manifest", str(tmp_path)], "is a directory"),
    ]
    for args, message in cases:
        proc = subprocess.run(
            [sys.executable, "-m", "ecom_app.cli", "simulate", *args, "--no-progress",
             "--output", str(tmp_path / "x.jsonl")] if "--output" not in args else
            [sys.executable, "-m", "ecom_app.cli", "simulate", *args, "--no-progress"],
            cwd=REPO_ROOT, env=_env(tmp_path), capture_output=True, text=True, timeout=60)
        assert proc.returncode == 2, (args, proc.stdout, proc.stderr)
        assert message in proc.stderr and "Traceback" not in proc.stderr, (args, proc.stderr)
