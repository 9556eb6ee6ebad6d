"""`herald-review`: run the review service."""

from __future__ import annotations

from herald_core.observability import configure_logging
from herald_core.runtime import run
from herald_review.app import create_app
from herald_review.settings import Settings


def main() -> None:
    settings = Settings()
    configure_logging("review", settings.common.log_level)
    run(lambda: create_app(settings))


if __name__ == "__main__":
    main()
