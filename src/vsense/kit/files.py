"""Files and folders only the server's own user may read: the embedded database (it
holds webhook secrets and header credentials), the generated secret key, the images."""

from __future__ import annotations

import os
from pathlib import Path

PRIVATE_FOLDER = 0o700
PRIVATE_FILE = 0o600


def private_folder(path: Path) -> Path:
    """`path`, created with any missing parents as 0700; an existing folder is kept as
    it is (it may be shared on purpose)."""
    missing: list[Path] = []
    folder = path
    while not folder.exists():
        missing.append(folder)
        folder = folder.parent
    for folder in reversed(missing):
        try:
            folder.mkdir(mode=PRIVATE_FOLDER)
        except FileExistsError:
            continue  # another process made it at the same moment
    return path


def private_file(path: Path) -> Path:
    """`path`, created empty as 0600 when missing, and made 0600 when others may read it
    (an embedded database created before this rule)."""
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE)
    except FileExistsError:
        if path.stat().st_mode & 0o077:
            path.chmod(PRIVATE_FILE)
    else:
        os.close(descriptor)
    return path
