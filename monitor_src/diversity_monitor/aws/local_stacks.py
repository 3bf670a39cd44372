"""Which local stacks run on this machine: a per-user registry, owned here.

`diversity-monitor local up` records each stack it serves as one small JSON file,
`<state home>/diversity-monitor/stacks/<port>.json` (`{"pid", "url", "state_dir", "region",
"clock"}`), and removes it when the stack stops. The state home is `$XDG_STATE_HOME`, else
`~/.local/state` (the XDG default), so a test or a second user gets its own registry.

Two readers: `local status|advance|down` find the running stack without `--state-dir`, and a
notebook given only `endpoint_url` finds the stack's state folder, and so its credentials
(`conventions.LOCAL_STACK_CREDENTIALS_FILE`), from the URL. A record whose process is gone (a
killed stack, a reboot) is stale: readers drop it and never act on it. The kit reads this
registry; only `local/` writes it.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from diversity_monitor.conventions import LOCAL_STACK_CREDENTIALS_FILE

STATE_HOME_ENV = "XDG_STATE_HOME"
REGISTRY_FOLDER = ("diversity-monitor", "stacks")


def registry_folder(environ: dict[str, str] | None = None) -> Path:
    environ = os.environ if environ is None else environ
    home = environ.get(STATE_HOME_ENV) or str(Path.home() / ".local" / "state")
    return Path(home).joinpath(*REGISTRY_FOLDER)


def _record_path(url: str) -> Path:
    return registry_folder() / f"{url.rstrip('/').rsplit(':', 1)[-1]}.json"


def process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive, but not ours to signal
        return True
    return True


def register_stack(record: dict) -> Path:
    """Record a serving stack (written atomically, readable by its owner only)."""
    path = _record_path(record["url"])
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.write_text(json.dumps(record, indent=1))
    temporary.chmod(0o600)
    os.replace(temporary, path)
    return path


def unregister_stack(url: str, pid: int) -> None:
    """Remove the record of the stack at `url`, if it is still this process's."""
    path = _record_path(url)
    try:
        if json.loads(path.read_text()).get("pid") == pid:
            path.unlink()
    except (OSError, ValueError):
        pass


def running_stacks() -> list[dict]:
    """Every registered stack whose process is alive, by URL; stale records are removed."""
    found = []
    folder = registry_folder()
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else ():
        try:
            record = json.loads(path.read_text())
            alive = process_alive(int(record["pid"]))
        except (OSError, ValueError, KeyError, TypeError):
            continue  # half-written or foreign: not a stack we know
        if alive:
            found.append(record)
        else:
            path.unlink(missing_ok=True)
    return found


def _same_url(one: str, other: str) -> bool:
    def normal(url: str) -> str:
        return url.rstrip("/").lower().replace("://localhost:", "://127.0.0.1:")
    return normal(one) == normal(other)


def stack_at(url: str) -> dict | None:
    """The running stack serving `url`, if one is registered on this machine."""
    return next((record for record in running_stacks() if _same_url(record["url"], url)), None)


def credentials_of(record: dict) -> dict | None:
    """The stack's credentials file ({aws_access_key_id, aws_secret_access_key, region_name}), if any."""
    path = Path(record["state_dir"]) / LOCAL_STACK_CREDENTIALS_FILE
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None
