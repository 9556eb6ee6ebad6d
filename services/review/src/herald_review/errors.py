"""Why the review use case refused a request (domain errors; the JSON API and the web UI map them to statuses)."""

from __future__ import annotations


class ReviewError(Exception):
    """`status` as HTTP would say it (404 unknown, 409 conflict, 422 not acceptable), `error` a stable code."""

    def __init__(self, status: int, error: str, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.error = error
        self.detail = detail

    def as_detail(self) -> dict[str, str]:
        return {"error": self.error, "detail": self.detail}


def unknown_review(review_id: str) -> ReviewError:
    return ReviewError(404, "unknown_review", f"no review {review_id!r}")
