"""Where the build writes things; one place so that no module guesses a path."""

from __future__ import annotations

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
