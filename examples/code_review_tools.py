"""Tools of the code-review example: publishing the report (a release step)."""

from __future__ import annotations

from relaybaton.actors import ToolContext

# Published reports, keyed by idempotency key: a re-run after a crash publishes nothing twice.
PUBLISHED: dict[str, str] = {}


def publish_review(report: str, security_findings: int, context: ToolContext) -> str:
    """Publish the review report and release the change.

    Args:
        report: the merged report.
        security_findings: how many security problems the report raises.
    """
    PUBLISHED.setdefault(context.idempotency_key, report)
    verdict = "released with findings cleared by a person" if security_findings else "released"
    return f"published the review ({len(report)} characters); {verdict}"
