"""The API token `make run` and compose generate on first start, kept in a file out of git.

    python -m launcher.api_token       create API_TOKEN_FILE when missing (compose's `api-token` step)

`make run` keeps it in `.local/api-token` (git-ignored), compose in the `api-token` volume. The
token is printed once, when it is created; afterwards it is read from the file. Every service gets
the file's path as API_TOKEN_FILE: the API checks the token, the webapp and the DAGs send it.
Rotate it by deleting the file and starting again (docs/notes/h22b-ops.md).
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from core.settings import LOCAL_STATE_DIR, ApiAccessSettings

DEFAULT_TOKEN_FILE = LOCAL_STATE_DIR / "api-token"
TOKEN_BYTES = 32  # 256 random bits, URL-safe base64: 43 characters


def ensure_token_file(path: Path) -> str | None:
    """Create `path` holding a new random token unless it already holds one.

    Returns the new token when this call created it (to be printed once), None when the file
    already held a token. The file is written owner-only (0600) and atomically: a reader never
    sees it half-written, and two concurrent first starts keep one token.
    """
    if path.exists() and path.read_text().strip():
        return None
    path.parent.mkdir(parents=True, exist_ok=True)
    token = secrets.token_urlsafe(TOKEN_BYTES)
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(8)}")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as out:
        out.write(token + "\n")
    try:
        os.link(temporary, path)  # fails if another start created it meanwhile: keep theirs
    except FileExistsError:
        if path.read_text().strip():
            return None
        os.replace(temporary, path)  # an empty file left by someone: replace it
        return token
    finally:
        temporary.unlink(missing_ok=True)
    return token


def main() -> None:
    """Compose's one-shot: create API_TOKEN_FILE when missing; print the token only then."""
    settings = ApiAccessSettings()
    if settings.api_token is not None:
        print("API_TOKEN is set: no token file needed")
        return
    path = settings.api_token_file or DEFAULT_TOKEN_FILE
    token = ensure_token_file(path)
    if token is None:
        print(f"API token: kept in {path} (not shown again)")
    else:
        print(f"API token generated (shown once, kept in {path}): {token}")


if __name__ == "__main__":
    main()
