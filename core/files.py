"""File IO every service shares: one atomic writer, one lister of visible files, one text decoder.

The data folders are watched by other processes (the ingestion DAG polls raw-data, the prediction
DAG polls good_data), so a file must appear whole or not at all, and a file still being written
must be invisible: writes go to a hidden temporary name in the destination folder (the same
filesystem, so the final rename is atomic) and every listing skips hidden names.
"""

from __future__ import annotations

import codecs
import contextlib
import hashlib
import io
import itertools
import os
import re
import uuid
import zipfile
from collections.abc import Iterator, Mapping
from pathlib import Path

from core.error_types import ErrorType

TEMPORARY_SUFFIX = ".tmp"
# control characters that CSV text never holds (tab, LF, CR, form feed are fine)
_CONTROL = re.compile(r"[\x01-\x08\x0b\x0e-\x1f\x7f]")
_MAX_CONTROL_SHARE = 0.01
# single-byte code pages of Latin-alphabet languages, as codecs names them
_LATIN_SINGLE_BYTE = frozenset({
    "cp1250", "cp1252", "cp1254", "cp1257", "iso8859-1", "iso8859-2", "iso8859-3", "iso8859-4",
    "iso8859-9", "iso8859-10", "iso8859-13", "iso8859-14", "iso8859-15", "iso8859-16",
    "mac-roman", "mac-latin2", "mac-iceland", "mac-turkish", "cp437", "cp775", "cp850", "cp852",
    "cp857", "cp858", "cp860", "cp861", "cp863", "cp865",
})
_BOMS: tuple[tuple[bytes, str, str], ...] = (
    (codecs.BOM_UTF32_LE, "utf-32", "UTF-32 with BOM"),
    (codecs.BOM_UTF32_BE, "utf-32", "UTF-32 with BOM"),
    (codecs.BOM_UTF8, "utf-8-sig", "UTF-8 with BOM"),
    (codecs.BOM_UTF16_LE, "utf-16", "UTF-16 with BOM"),
    (codecs.BOM_UTF16_BE, "utf-16", "UTF-16 with BOM"),
)
_MAGIC: tuple[tuple[bytes, str], ...] = (
    (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1",
     "an old-format Excel workbook (.xls) or another Microsoft Office document, not a CSV file: "
     "open it in the spreadsheet and save it as 'CSV UTF-8'"),
    (b"\x1f\x8b", "gzip-compressed, not a CSV file: decompress it first"),
    (b"%PDF", "a PDF document, not a CSV file"),
    (b"BZh", "bzip2-compressed, not a CSV file: decompress it first"),
    (b"7z\xbc\xaf\x27\x1c", "a 7-Zip archive, not a CSV file: extract it first"),
    (b"PAR1", "a Parquet file, not a CSV file"),
)


class UnreadableFileError(ValueError):
    """A file that cannot be read as customer rows.

    `error_type` is ErrorType.EMPTY_FILE or ErrorType.UNREADABLE_FILE; `detail` says why in the
    user's terms as a verb phrase whose subject is the file ("is an Excel workbook (.xlsx), not a
    CSV file: ...", "has no bytes"): callers put the file's name, or "the file", first.
    """

    def __init__(self, error_type: ErrorType, detail: str) -> None:
        super().__init__(detail)
        self.error_type = error_type
        self.detail = detail


def temporary_name(target: Path) -> Path:
    """The hidden name a write of `target` is staged under: `.<name>.<unique>.tmp`, same folder."""
    return target.with_name(f".{target.name}.{uuid.uuid4().hex[:12]}{TEMPORARY_SUFFIX}")


def write_atomic(contents: Mapping[Path, bytes]) -> None:
    """Write every file whole and durably, or none of them.

    Each file is written under a hidden temporary name in its destination folder and flushed to
    disk (fsync); only when all are staged are they renamed into place (`os.replace`, atomic on
    one filesystem), then each folder is synced so the renames survive a power cut. A reader
    polling the folders never sees a partial file. On any failure before the renames, every
    temporary is removed, no target appears, and the error is raised. Folders are created.

    Args:
        contents: target path -> the bytes it must hold (one entry for a single file).
    Raises:
        OSError: the disk or folder refused a write; nothing of this call is left behind.
    """
    staged: list[tuple[Path, Path]] = []
    try:
        for target, data in contents.items():
            target.parent.mkdir(parents=True, exist_ok=True)
            temporary = temporary_name(target)
            staged.append((temporary, target))
            with temporary.open("wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
        for temporary, target in staged:
            os.replace(temporary, target)
    finally:
        for temporary, _ in staged:
            temporary.unlink(missing_ok=True)
    for folder in {target.parent for _, target in staged}:
        _sync_folder(folder)


def _sync_folder(folder: Path) -> None:
    with contextlib.suppress(OSError):  # some filesystems cannot open a folder for fsync
        descriptor = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(descriptor)
        finally:
            os.close(descriptor)


def list_visible_files(folder: Path) -> list[Path]:
    """The regular files directly in `folder` whose names do not start with a dot, sorted by name.

    Every name counts, not only `*.csv` (a customer's `export.CSV` or `customers.txt` is data too);
    hidden names are writes in progress (see write_atomic) or the claims folder. A missing folder
    has no files.
    """
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if not p.name.startswith(".") and p.is_file())


def remove_orphan_temporaries(folder: Path, *, older_than_seconds: float, now: float) -> list[Path]:
    """Delete write_atomic's temporaries left in `folder` by a killed writer; returns them.

    Only hidden `*.tmp` files last modified more than `older_than_seconds` before `now` (epoch
    seconds) go: a write still in progress is younger than that.
    """
    removed: list[Path] = []
    if not folder.is_dir():
        return removed
    for path in folder.iterdir():
        if path.name.startswith(".") and path.name.endswith(TEMPORARY_SUFFIX) and path.is_file():
            with contextlib.suppress(FileNotFoundError):
                if now - path.stat().st_mtime > older_than_seconds:
                    path.unlink()
                    removed.append(path)
    return sorted(removed)


def _nul_byte_error(head: bytes, at: int) -> UnreadableFileError:
    """The refusal of a file with a NUL byte at byte `at`, naming UTF-16 when `head` (the file's
    first bytes) looks like UTF-16 without a byte-order mark."""
    looks_utf16 = head[1:200:2].count(0) > 40 or head[0:200:2].count(0) > 40
    hint = (
        "UTF-16 text without a byte-order mark: save it as 'CSV UTF-8'" if looks_utf16
        else "binary content or a damaged file, not CSV text"
    )
    return UnreadableFileError(ErrorType.UNREADABLE_FILE, f"holds a NUL byte at byte {at}: {hint}")


def decode_text_and_encoding(data: bytes) -> tuple[str, str]:
    """A text file's bytes as str, and the name of the encoding they were in.

    The rules (core/reader.py applies them to every customer file): no bytes or only white space
    is EMPTY_FILE; a spreadsheet, archive, PDF, HTML page or other binary content is named and
    refused; UTF-8 with or without a BOM, UTF-16/32 with a BOM; otherwise the legacy encoding
    charset-normalizer detects (Windows-1252 for Latin single-byte text); a NUL anywhere, or
    more than 1% control characters, is not text.

    Raises:
        UnreadableFileError: empty, not text (named: spreadsheet, archive, HTML...), a NUL, or an
            encoding that is neither UTF-8/16/32 nor recognised by charset-normalizer.
    """
    if not data.strip():
        raise UnreadableFileError(ErrorType.EMPTY_FILE, "has no bytes")
    _refuse_known_binary(data)
    for bom, codec, name in _BOMS:
        if data.startswith(bom):
            try:
                text = data.decode(codec)
            except UnicodeDecodeError as exc:
                raise UnreadableFileError(
                    ErrorType.UNREADABLE_FILE, f"starts like {name} text but byte {exc.start} is not"
                ) from exc
            return _checked_text(text.lstrip("\ufeff")), name
    nul = data.find(b"\x00")
    if nul >= 0:
        raise _nul_byte_error(data, nul)
    try:
        return _checked_text(data.decode("utf-8")), "UTF-8"
    except UnicodeDecodeError as exc:
        first_bad = exc.start
    text, encoding = _detect_legacy_encoding(data, first_bad)
    return _checked_text(text), encoding


def _refuse_known_binary(data: bytes, whole: Path | None = None) -> None:
    """Refuse known binary formats by their first bytes (`data`: the file or its first 4 KiB).

    `whole` is the file's path when `data` is only its start (a zip is opened to name its kind).
    """
    if data.startswith((b"PK\x03\x04", b"PK\x05\x06")):
        raise UnreadableFileError(ErrorType.UNREADABLE_FILE, _zip_kind(whole if whole is not None else data))
    for magic, what in _MAGIC:
        if data.startswith(magic):
            raise UnreadableFileError(ErrorType.UNREADABLE_FILE, f"is {what}")
    head = data[:4096].lstrip().lower()
    if head.startswith(b"<?xml") and b"urn:schemas-microsoft-com:office:spreadsheet" in head:
        raise UnreadableFileError(
            ErrorType.UNREADABLE_FILE,
            "is an Excel XML spreadsheet, not a CSV file: save it as 'CSV UTF-8'",
        )
    if head.startswith((b"<!doctype html", b"<html")) or (
        head.startswith(b"<") and any(tag in head for tag in (b"<html", b"<body", b"<table", b"<head"))
    ):
        raise UnreadableFileError(
            ErrorType.UNREADABLE_FILE,
            "is an HTML page, not a CSV file (a web page or report saved under a .csv name?)",
        )


def _zip_kind(data: bytes | Path) -> str:
    try:
        names = zipfile.ZipFile(io.BytesIO(data) if isinstance(data, bytes) else data).namelist()
    except (zipfile.BadZipFile, OSError, ValueError):
        names = []
    if any(name.startswith("xl/") for name in names):
        return ("is an Excel workbook (.xlsx), not a CSV file: open it in the spreadsheet and save "
                "it as 'CSV UTF-8'")
    if "content.xml" in names:
        return "is an OpenDocument spreadsheet (.ods), not a CSV file: save it as CSV (UTF-8)"
    if any(name.startswith("word/") for name in names):
        return "is a Word document (.docx), not a CSV file"
    return "is a zip archive, not a CSV file: extract the CSV file from it first"


def _detect_legacy_encoding(data: bytes, first_bad: int) -> tuple[str, str]:
    """Text in a legacy encoding (Windows-1252, Latin-1, ...) as charset-normalizer detects it."""
    from charset_normalizer import from_bytes

    best = from_bytes(data).best()
    refusal = (
        f"is not UTF-8 text (byte {first_bad} cannot be read) and its encoding was not recognised: "
        "save it as 'CSV UTF-8'"
    )
    if best is None:
        raise UnreadableFileError(ErrorType.UNREADABLE_FILE, refusal)
    encoding = best.encoding
    # On short files the detector is unreliable between single-byte code pages (it named
    # mac_latin2 for German names and cp1006 for "café" in our tests). Windows-1252, what
    # spreadsheets on Windows write, wins when the best guess is another Latin code page, or when
    # reading the bytes as Windows-1252 looks no more garbled (chaos) than the best guess.
    western = from_bytes(data, cp_isolation=["cp1252"]).best()
    if western is not None and (
        codecs.lookup(encoding).name in _LATIN_SINGLE_BYTE or western.chaos <= best.chaos
    ):
        try:
            return data.decode("cp1252"), "Windows-1252 (detected)"
        except UnicodeDecodeError:
            pass
    try:
        text = data.decode(encoding)
    except (UnicodeDecodeError, LookupError) as exc:
        raise UnreadableFileError(ErrorType.UNREADABLE_FILE, refusal) from exc
    return text, f"{codecs.lookup(encoding).name} (detected)"


def _checked_text(text: str) -> str:
    nul = text.find("\x00")
    if nul >= 0:
        raise UnreadableFileError(
            ErrorType.UNREADABLE_FILE,
            f"holds a NUL character at character {nul}: binary content or a damaged file, not CSV text",
        )
    controls = len(_CONTROL.findall(text))
    if controls > max(1, _MAX_CONTROL_SHARE * len(text)):
        raise UnreadableFileError(ErrorType.UNREADABLE_FILE, "is binary content, not CSV text")
    return text


def decode_text(data: bytes) -> str:
    """A text file's bytes as str, by the rules of `decode_text_and_encoding`.

    Raises:
        UnreadableFileError: empty (EMPTY_FILE), or not text in an encoding we can name
            (UNREADABLE_FILE, the reason as a verb phrase: "holds a NUL byte at byte 70000: ...").
    """
    return decode_text_and_encoding(data)[0]


# --- text files read as a stream ---------------------------------------------------------------------

IN_MEMORY_TEXT_BYTES = 32 * 1024 * 1024
"""Files up to this size are decoded whole (`decode_text_and_encoding`); larger ones are checked
by the same rules block by block (`open_text`) and never held whole in memory."""
_BLOCK_BYTES = 1 << 20
_HEAD_BYTES = 4096
# a legacy encoding is detected on at most this much of a large file (charset-normalizer)
_LEGACY_SAMPLE_BYTES = 32 * 1024 * 1024
_BOM_CODECS = {name: codec for _, codec, name in _BOMS}


class TextSource:
    """A text file whose encoding is known and checked, to be read (again) as lines.

    `encoding` is the name users see ("UTF-8", "Windows-1252 (detected)"), `codec` the Python
    codec that reads it. `lines()` gives the text from its start, byte-order mark removed, with
    line endings as written (the `newline=""` convention the csv module wants); each call reads
    the file again, so a caller can make several passes in constant memory.
    """

    def __init__(self, *, encoding: str, codec: str, text: str | None = None, path: Path | None = None):
        self.encoding = encoding
        self.codec = codec
        self._text = text
        self._path = path

    def lines(self) -> Iterator[str]:
        """The text's lines, each with its line ending (CRLF, LF or CR alone) kept."""
        if self._text is not None:
            return io.StringIO(self._text, newline="")
        assert self._path is not None
        handle = self._path.open(encoding=self.codec, newline="")  # closed when collected
        first = handle.readline().lstrip("\ufeff")
        return itertools.chain((first,), handle)

    def utf8_source(self) -> bytes | Path:
        """The text as UTF-8 bytes (a text held in memory) or the file's path (a file read from disk:
        its bytes, a byte-order mark included). For a UTF-8 text (`codec` utf-8 or utf-8-sig)."""
        if self._text is not None:
            return self._text.encode("utf-8")
        assert self._path is not None
        return self._path

    def head(self, chars: int) -> str:
        """The first `chars` characters of the text."""
        if self._text is not None:
            return self._text[:chars]
        assert self._path is not None
        with self._path.open(encoding=self.codec, newline="") as handle:
            return handle.read(chars).lstrip("\ufeff")


def open_text(source: bytes | Path) -> TextSource:
    """A file's text by the rules of `decode_text_and_encoding`, without holding a large file whole.

    Bytes, and files up to IN_MEMORY_TEXT_BYTES, are decoded in memory by
    `decode_text_and_encoding` itself. A larger file is checked block by block by the same rules
    (no bytes, known binary formats on its first bytes, a BOM, a NUL, UTF-8, more than 1% control
    characters); a legacy encoding is detected on its first 32 MiB.

    Raises:
        UnreadableFileError: as `decode_text_and_encoding`.
    """
    if isinstance(source, bytes) or source.stat().st_size <= IN_MEMORY_TEXT_BYTES:
        data = source if isinstance(source, bytes) else source.read_bytes()
        text, encoding = decode_text_and_encoding(data)
        return TextSource(encoding=encoding, codec=_codec_of(encoding), text=text)
    return _open_large_text(source)


def _codec_of(encoding: str) -> str:
    if encoding == "UTF-8":
        return "utf-8"
    if encoding in _BOM_CODECS:
        return _BOM_CODECS[encoding]
    if encoding.startswith("Windows-1252"):
        return "cp1252"
    return encoding.removesuffix(" (detected)")


def _blocks(path: Path) -> Iterator[bytes]:
    with path.open("rb") as handle:
        while block := handle.read(_BLOCK_BYTES):
            yield block


def _open_large_text(path: Path) -> TextSource:
    with path.open("rb") as handle:
        head = handle.read(_HEAD_BYTES)
    if not any(block.strip() for block in _blocks(path)):
        raise UnreadableFileError(ErrorType.EMPTY_FILE, "has no bytes")
    _refuse_known_binary(head, path)
    for bom, codec, name in _BOMS:
        if head.startswith(bom):
            _check_decoded(path, codec, name)
            return TextSource(encoding=name, codec=codec, path=path)
    offset = 0
    for block in _blocks(path):
        nul = block.find(b"\x00")
        if nul >= 0:
            raise _nul_byte_error(head, offset + nul)
        offset += len(block)
    first_bad = _check_decoded(path, "utf-8", "UTF-8", refuse=False)
    if first_bad is None:
        return TextSource(encoding="UTF-8", codec="utf-8", path=path)
    with path.open("rb") as handle:
        sample = handle.read(_LEGACY_SAMPLE_BYTES)
    _, encoding = _detect_legacy_encoding(sample, first_bad)
    codec = _codec_of(encoding)
    _check_decoded(path, codec, encoding)
    return TextSource(encoding=encoding, codec=codec, path=path)


def _check_decoded(path: Path, codec: str, name: str, *, refuse: bool = True) -> int | None:
    """Decode the whole file block by block with `codec`, checking the text as `_checked_text` does.

    Returns None when it decodes; the offset of the first byte that does not when `refuse` is
    False (UnreadableFileError when True).
    """
    decoder = codecs.getincrementaldecoder(codec)()
    offset = chars = controls = 0
    try:
        for block in _blocks(path):
            text = decoder.decode(block)
            if "\x00" in text:
                raise UnreadableFileError(
                    ErrorType.UNREADABLE_FILE,
                    f"holds a NUL character at character {chars + text.find(chr(0))}: binary content "
                    "or a damaged file, not CSV text",
                )
            chars += len(text)
            controls += len(_CONTROL.findall(text))
            offset += len(block)
        chars += len(decoder.decode(b"", final=True))
    except UnicodeDecodeError as exc:
        position = max(0, offset + exc.start - len(decoder.getstate()[0]))
        if not refuse:
            return position
        raise UnreadableFileError(
            ErrorType.UNREADABLE_FILE,
            f"is not {name} text: byte {position} cannot be read: save it as 'CSV UTF-8'",
        ) from exc
    if controls > max(1, _MAX_CONTROL_SHARE * chars):
        raise UnreadableFileError(ErrorType.UNREADABLE_FILE, "is binary content, not CSV text")
    return None


@contextlib.contextmanager
def atomic_writers(targets: list[Path]) -> Iterator[dict[Path, io.BufferedWriter]]:
    """Write several files as streams, all of them whole or none (write_atomic's rules).

    Yields a binary handle per target, each writing a hidden temporary in the target's folder.
    When the block ends normally every temporary is flushed to disk, then all are renamed into
    place and the folders synced; when it raises, every temporary is removed and no target
    appears. Folders are created.
    """
    staged: dict[Path, tuple[Path, io.BufferedWriter]] = {}
    created = [t.parent for t in targets if not t.parent.exists()]
    done = False
    try:
        for target in targets:
            target.parent.mkdir(parents=True, exist_ok=True)
            temporary = temporary_name(target)
            staged[target] = (temporary, temporary.open("wb"))
        yield {target: handle for target, (_, handle) in staged.items()}
        for _, handle in staged.values():
            handle.flush()
            os.fsync(handle.fileno())
            handle.close()
        for target, (temporary, _) in staged.items():
            os.replace(temporary, target)
        done = True
    finally:
        for temporary, handle in staged.values():
            handle.close()
            temporary.unlink(missing_ok=True)
        if not done:  # nothing of this call is left behind, not even a folder it made
            for folder in created:
                with contextlib.suppress(OSError):
                    folder.rmdir()
    for folder in {target.parent for target in staged}:
        _sync_folder(folder)


def file_sha256(path: Path) -> str:
    """The SHA-256 of a file's bytes (hex), read in blocks."""
    digest = hashlib.sha256()
    for block in _blocks(path):
        digest.update(block)
    return digest.hexdigest()
