"""Tools of the code-review example: publishing the report (a release step).

``publish_review`` writes the report from what the conversation recorded (the runtime
wrote the experts' structured findings; the synthesizer's model did not): the security
findings of the last scan of the released code, and each optimisation with its measured
effect, approved only at 10% or more. A release a person allowed against the rules says so,
with the reason they gave.
"""

from __future__ import annotations

from relaybaton.actors import ToolContext

# Published reports, keyed by idempotency key: a re-run after a crash publishes nothing twice.
PUBLISHED: dict[str, str] = {}

# An optimisation whose measured effect is under this is not worth its risk.
MIN_EFFECT_PERCENT = 10.0


def publish_review(report: str, code: str, context: ToolContext) -> str:
    """Publish the review report and release the code.

    Args:
        report: the merged report.
        code: the code under review, as it will be released.
    """
    scans = [r for r in context.results("security_scanner") if code in str(r.arguments)]
    findings = scans[-1].value.get("findings", []) if scans and scans[-1].value else []
    optimisations = []
    for result in context.results("performance_optimizer")[-1:]:
        optimisations = result.value.get("findings", []) if result.value else []
    lines = [report]
    verdicts = []
    for item in optimisations:
        effect = float(item.get("measured_effect_percent", 0))
        verdict = (
            "approved"
            if effect >= MIN_EFFECT_PERCENT
            else f"not approved (measured effect {effect:g}% is under {MIN_EFFECT_PERCENT:g}%)"
        )
        lines.append(f"Optimisation {verdict}: {item.get('suggestion', '')}")
        verdicts.append(f"optimisation {verdict}")
    if context.approval_note:
        status = (
            f"released by a person as a known risk ({len(findings)} security finding(s) not "
            f"fixed): {context.approval_note}"
        )
    else:
        status = "released: the security scan of this code is clean"
    lines.append(f"Status: {status}")
    PUBLISHED.setdefault(context.idempotency_key, "\n".join(lines))
    return "; ".join([f"published the review and {status}", *verdicts])
