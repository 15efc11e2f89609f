"""How much one person may create: a platform's resources are shared."""

from services.runtime.errors import Throttled


def check_quota(count: int, limit: int, what: str) -> None:
    """Refuse one more when `count` already reached `limit` (RESOURCE_EXHAUSTED, so 429)."""
    if count >= limit:
        raise Throttled("QUOTA_EXCEEDED", f"at most {limit} {what}")
