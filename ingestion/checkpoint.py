"""The streaming job's checkpoint on disk: where it lives, its ledger name, and the offsets
Spark planned and committed there (read by `ecom ingest status` and the stream's preflight
without starting Spark)."""

from __future__ import annotations

import json
import shutil
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from ecom.config import Settings
from ingestion.progress import parse_offsets


@dataclass(frozen=True)
class StreamPaths:
    root: Path

    @property
    def events(self) -> Path:
        return self.root / "events"

    @property
    def windows(self) -> Path:
        return self.root / "windows"

    @property
    def identity(self) -> Path:
        return self.root / "identity.json"


def stream_paths(settings: Settings) -> StreamPaths:
    return StreamPaths(settings.checkpoint_dir / "ingest")


def ledger_name(paths: StreamPaths) -> str:
    """The ledger's query_name for this checkpoint (created with it, removed with it)."""
    if paths.identity.is_file():
        return json.loads(paths.identity.read_text())["query_name"]
    paths.root.mkdir(parents=True, exist_ok=True)
    name = f"stream-{uuid.uuid4().hex[:12]}"
    paths.identity.write_text(json.dumps({"query_name": name, "created_at": time.time()}) + "\n")
    return name


def reset_checkpoint(settings: Settings) -> bool:
    """Forget the stream's position (both queries). True if there was one."""
    root = stream_paths(settings).root
    if not root.exists():
        return False
    shutil.rmtree(root)
    return True


def committed_offsets(checkpoint: Path) -> dict[str, int] | None:
    """End offsets of the last batch Spark committed in this checkpoint (None if none)."""
    commits = checkpoint / "commits"
    if not commits.is_dir():
        return None
    done = sorted((int(p.name) for p in commits.iterdir() if p.name.isdigit()), reverse=True)
    for batch in done:
        offsets_file = checkpoint / "offsets" / str(batch)
        if offsets_file.is_file():
            lines = offsets_file.read_text().strip().splitlines()
            return parse_offsets(lines[-1])
    return None


def planned_offsets(checkpoint: Path) -> dict[str, int] | None:
    """End offsets of the newest batch Spark planned (committed or not)."""
    folder = checkpoint / "offsets"
    if not folder.is_dir():
        return None
    batches = sorted((int(p.name) for p in folder.iterdir() if p.name.isdigit()), reverse=True)
    if not batches:
        return None
    return parse_offsets((folder / str(batches[0])).read_text().strip().splitlines()[-1])
