"""The local stack's resource store: JSON records by kind and name, persisted in a folder.

A restart of the stack reloads the same records, so schedules, executions and endpoint
configs (and so rollbacks) survive `local down` / `local up`.
"""

from __future__ import annotations

import copy
import json
import os
import threading
from pathlib import Path


class Store:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self._path = self.root / "resources.json"
        self._lock = threading.RLock()
        self._data: dict[str, dict[str, dict]] = (
            json.loads(self._path.read_text()) if self._path.exists() else {}
        )

    def get(self, kind: str, name: str) -> dict | None:
        with self._lock:
            record = self._data.get(kind, {}).get(name)
            return copy.deepcopy(record)

    def list(self, kind: str) -> list[dict]:
        with self._lock:
            return [copy.deepcopy(record) for record in self._data.get(kind, {}).values()]

    def put(self, kind: str, name: str, record: dict) -> None:
        with self._lock:
            self._data.setdefault(kind, {})[name] = copy.deepcopy(record)
            self._save()

    def delete(self, kind: str, name: str) -> bool:
        with self._lock:
            removed = self._data.get(kind, {}).pop(name, None) is not None
            if removed:
                self._save()
            return removed

    def _save(self) -> None:
        # Write-then-rename so a crash never leaves a half-written state file.
        temporary = self._path.with_suffix(".tmp")
        temporary.write_text(json.dumps(self._data, indent=1, sort_keys=True, default=str))
        os.replace(temporary, self._path)
