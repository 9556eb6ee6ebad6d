"""`herald-planner`: run the planner service."""

from __future__ import annotations

from herald_core.runtime import run
from herald_planner.app import create_app
from herald_planner.settings import Settings


def main() -> None:
    run("planner", Settings(), create_app)


if __name__ == "__main__":
    main()
