"""`herald-guard`: run the guard service."""

from __future__ import annotations

from herald_core.runtime import run
from herald_guard.app import create_app
from herald_guard.settings import Settings


def main() -> None:
    run("guard", Settings(), create_app)


if __name__ == "__main__":
    main()
