"""A device's message or batch of messages, checked: what may be kept, what was refused."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from vsense.kit.errors import Unprocessable
from vsense.kit.time import utcnow
from vsense.payloads.schemas import PayloadInvalid, ValidatedMessage, validate_message

MAX_BATCH = 500


class BatchPartlyRejected(Unprocessable):
    """Some messages of a batch were refused; the accepted ones are kept (committed)."""

    commit_session = True


@dataclass(frozen=True, slots=True)
class Batch:
    """A message or a batch after validation: what may be kept, and what was refused
    (each refusal naming its message by index)."""

    size: int
    valid: list[ValidatedMessage]
    errors: list[dict[str, Any]]
    received_at: datetime

    def raise_refusals(self, kept: int) -> None:
        """422 naming each refused message, when some were; `kept` of them were kept."""
        if self.errors:
            rejected = len({e["index"] for e in self.errors})
            raise BatchPartlyRejected(
                f"{kept} of {self.size} messages accepted; {rejected} refused "
                "(see `error`, by message index).",
                errors=self.errors,
            )


def check_batch(body: Any, *, accept_unknown_types: bool) -> Batch:
    """Check a message or a batch; 422 when it is empty or too long."""
    messages = body if isinstance(body, list) else [body]
    if not messages:
        raise Unprocessable("The batch is empty.")
    if len(messages) > MAX_BATCH:
        raise Unprocessable(f"A batch holds at most {MAX_BATCH} messages.")
    now = utcnow()
    valid: list[ValidatedMessage] = []
    errors: list[dict[str, Any]] = []
    for index, raw in enumerate(messages):
        try:
            valid.append(validate_message(raw, now=now, accept_unknown_types=accept_unknown_types))
        except PayloadInvalid as exc:
            errors += [{"index": index, **error} for error in exc.errors]
    return Batch(len(messages), valid, errors, now)
