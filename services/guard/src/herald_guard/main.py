"""`herald-guard`: run the guard service."""

from __future__ import annotations

from herald_core.observability import configure_logging
from herald_core.runtime import run
from herald_guard.app import create_app
from herald_guard.settings import Settings


def main() -> None:
    settings = Settings()
    configure_logging("guard", settings.common.log_level)
    run(lambda: create_app(settings))


if __name__ == "__main__":
    main()
