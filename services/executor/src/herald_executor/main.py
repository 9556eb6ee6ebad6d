"""`herald-executor`: run the executor service."""

from __future__ import annotations

from herald_core.runtime import run
from herald_executor.app import create_app
from herald_executor.settings import Settings


def main() -> None:
    run("executor", Settings(), create_app)


if __name__ == "__main__":
    main()
