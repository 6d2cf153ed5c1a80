"""The password policy: long enough, and not one that people commonly use.

Strength is zxcvbn's estimate (Dropbox's model, maintained in Python as `zxcvbn`): it
matches a password against the leaked-password frequency lists, English words, names,
keyboard walks, repeats, sequences, dates and the user's own email and name, and scores
the guesses an attacker would need. A word list alone would refuse `password` but pass
`password1!` or eight spaces; zxcvbn refuses all three and explains why.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterable

from zxcvbn import zxcvbn

MIN_PASSWORD_LENGTH = 8
# zxcvbn's score 3: "safely unguessable" (about 10^8 guesses and more); 0-2 are refused.
MIN_SCORE = 3
# zxcvbn refuses longer input (its matching is superlinear): the first characters are
# scored, and a password strong in them is strong.
SCORED_LENGTH = 72
PLATFORM_WORDS = ("vsense", "viziosense")


def password_problem(password: str, user_inputs: Iterable[str] = ()) -> str | None:
    """Why a password may not be used (a field message), or None when it may."""
    words = [*PLATFORM_WORDS]
    for text in user_inputs:
        words.append(text)
        words.extend(part for part in re.split(r"[@.\s_+-]+", text) if len(part) >= 3)
    result = zxcvbn(password[:SCORED_LENGTH], user_inputs=words)
    if result["score"] >= MIN_SCORE:
        return None
    warning = str(result["feedback"].get("warning") or "").rstrip(".")
    reason = f" ({warning[0].lower()}{warning[1:]})" if warning else ""
    return f"is too easy to guess{reason}; use a longer passphrase of uncommon words"


def generate_password(nbytes: int = 12) -> str:
    """A random password that the policy accepts (the first start's and the demo's)."""
    while True:
        password = secrets.token_urlsafe(nbytes)
        if password_problem(password) is None:
            return password
