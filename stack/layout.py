"""Where the build writes things; one place so that no module guesses a path."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from stack.pki import PkiFiles

SERVICES = ("postfix", "dovecot")


@dataclass(frozen=True)
class BuildLayout:
    """The git-ignored build folder. Only context/<service>/ is ever sent to Docker."""

    root: Path

    @property
    def pki(self) -> PkiFiles:
        return PkiFiles(self.root / "pki")

    @property
    def credentials(self) -> Path:
        return self.root / "secrets" / "credentials.json"

    def context(self, service: str) -> Path:
        return self.root / "context" / service

    @property
    def compose_env(self) -> Path:
        return self.root / "compose.env"

    @property
    def target(self) -> Path:
        """The harness's description of the lab: ports, CA, accounts."""
        return self.root / "target.json"

    # Everything mailstack writes under the build folder: pki, secrets, image contexts, compose
    # and target files, and the harness's and benchmarks' own folders.
    GENERATED = ("pki", "secrets", "context", "compose.env", "target.json", "harness", "bench")

    def remove_generated(self) -> list[str]:
        """Delete what mailstack wrote here, and the folder if nothing else is left; return the
        names of anything else, which is kept (a mistyped --build-dir must not cost a file)."""
        if not self.root.is_dir():
            return []
        for name in self.GENERATED:
            path = self.root / name
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            elif path.exists() or path.is_symlink():
                path.unlink()
        others = sorted(p.name for p in self.root.iterdir())
        if not others:
            self.root.rmdir()
        return others
