"""The API token `make run` and compose generate on first start, kept in a file out of git.

    python -m launcher.api_token       create API_TOKEN_FILE when missing
    python -m launcher.api_token --owner 50000:0 --copy PATH --copy-owner 65534:65534
                                       compose's `api-token` step (run as root): the file given to
                                       the app's uid, and a read-only copy for Prometheus's user

`make run` keeps it in `.local/api-token` (git-ignored), compose in the `api-token` volume. The
token is printed once, when it is created; afterwards it is read from the file. Every service gets
the file's path as API_TOKEN_FILE: the API checks the token, the webapp and the DAGs send it.
Rotate it by deleting the file and starting again (docs/design/operations.md).
"""

from __future__ import annotations

import argparse
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


def owner(text: str) -> tuple[int, int]:
    """`UID:GID` -> (uid, gid); argparse's type for --owner and --copy-owner."""
    uid, _, gid = text.partition(":")
    try:
        return int(uid), int(gid or uid)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not UID:GID (numbers)") from None


def write_copy(token: str, path: Path, uid_gid: tuple[int, int] | None) -> None:
    """Write `token` to `path` read-only for its owner (0400), atomically, owned by `uid_gid`.

    The copy a reader under another uid needs (Prometheus runs as nobody, the app as 50000): the
    caller must be root to give it another owner. Rewritten on every start, so it follows the token.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(8)}")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o400)
    try:
        with os.fdopen(descriptor, "w") as out:
            out.write(token + "\n")
        if uid_gid is not None:
            os.chown(temporary, *uid_gid)
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def main(argv: list[str] | None = None) -> None:
    """Create API_TOKEN_FILE when missing; print the token only then. Compose's one-shot."""
    parser = argparse.ArgumentParser(description="the API token, generated on first start")
    parser.add_argument("--owner", type=owner, metavar="UID:GID",
                        help="give API_TOKEN_FILE to this owner (compose: the app's uid; needs root)")
    parser.add_argument("--copy", type=Path, metavar="PATH",
                        help="also write the token to PATH, 0400 (compose: Prometheus's copy)")
    parser.add_argument("--copy-owner", type=owner, metavar="UID:GID", help="the copy's owner (needs root)")
    args = parser.parse_args(argv)
    settings = ApiAccessSettings()
    if settings.api_token is not None:
        print("API_TOKEN is set: no token file generated")
        value = settings.api_token.get_secret_value()
    else:
        path = settings.api_token_file or DEFAULT_TOKEN_FILE
        token = ensure_token_file(path)
        if args.owner is not None:
            os.chown(path, *args.owner)
        if token is None:
            print(f"API token: kept in {path} (not shown again)")
        else:
            print(f"API token generated (shown once, kept in {path}): {token}")
        value = path.read_text().strip()
    if args.copy is not None:
        write_copy(value, args.copy, args.copy_owner)
        print(f"API token copied to {args.copy} (0400)")


if __name__ == "__main__":
    main()
