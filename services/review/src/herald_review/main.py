"""`herald-review`: run the review service."""

from __future__ import annotations

from herald_core.runtime import run
from herald_review.app import create_app
from herald_review.settings import Settings


def main() -> None:
    run("review", Settings(), create_app)


if __name__ == "__main__":
    main()
