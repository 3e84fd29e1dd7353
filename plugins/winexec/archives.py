"""Listing archive members without extracting anything: zip, tar, and the single-file
compressors gzip, bzip2 and xz.

Archives are read from memory; member names are only ever compared and shown, never used
as paths.  Any failure of the underlying library on hostile data (there are many kinds)
becomes :class:`UnreadableArchive`.
"""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import tarfile
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from ie_plugins.winexec.content import LimitReached, Reader
from ie_plugins.winexec.signatures import Container

_ZIP_END = b"PK\x05\x06"
_ZIP64_LOCATOR = b"PK\x06\x07"
_ZIP64_END = b"PK\x06\x06"
_ZIP_END_SEARCH = 22 + 65535  # fixed record + the longest comment
_COMPRESSED_SUFFIXES = {Container.GZIP: (".gz", ".gzip", ".z"), Container.BZIP2: (".bz2",),
                        Container.XZ: (".xz",)}
_TAR_ALIASES = (".tgz", ".tbz2", ".tbz", ".txz")


class UnreadableArchive(Exception):
    """The archive (or one member) cannot be opened: corrupt, unsupported, encrypted."""


@dataclass
class Member:
    """One file (or directory, link...) in an archive."""

    name: str
    opener: Callable[[], Reader] | None  # None: nothing to read (directory, link)
    encrypted: bool = False

    def open(self) -> Reader:
        """A reader of the member's bytes; :class:`UnreadableArchive` if it cannot be
        opened (a local header that contradicts the directory, say)."""
        if self.opener is None:
            return lambda size: b""
        try:
            return self.opener()
        except UnreadableArchive:
            raise
        except Exception as err:  # the library's view of a hostile member
            raise UnreadableArchive(f"cannot open member ({type(err).__name__})") from err


def members(kind: Container, data: bytes, outer_name: str,
            max_entries: int) -> Iterator[Member]:
    """The members of the archive ``data`` (of format ``kind``), lazily.

    Raises :class:`UnreadableArchive` (also while iterating) and :class:`LimitReached`
    when the archive declares more members than ``max_entries`` before any is listed.
    """
    try:
        if kind is Container.ZIP:
            yield from _zip_members(data, max_entries)
        elif kind is Container.TAR:
            yield from _tar_members(data)
        else:
            yield _compressed_member(kind, data, outer_name)
    except (UnreadableArchive, LimitReached):
        raise
    except Exception as err:  # zipfile/tarfile raise many kinds on hostile data
        raise UnreadableArchive(f"corrupt {kind.value} ({type(err).__name__})") from err


def _zip_members(data: bytes, max_entries: int) -> Iterator[Member]:
    declared = _zip_declared_entries(data)
    if declared is not None and declared > max_entries:
        raise LimitReached(f"zip declares {declared} members", whole_scan=True)
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile as err:
        raise UnreadableArchive(f"corrupt zip ({err})") from err
    for info in archive.infolist():
        if info.is_dir():
            yield Member(info.filename, None)
            continue
        encrypted = bool(info.flag_bits & 0x1)
        opener = None if encrypted else _zip_opener(archive, info)
        yield Member(info.filename, opener, encrypted=encrypted)


def _zip_opener(archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> Callable[[], Reader]:
    def open_member() -> Reader:
        return archive.open(info).read
    return open_member


def _zip_declared_entries(data: bytes) -> int | None:
    """The member count in the end-of-central-directory record (zip64 too), read before
    zipfile builds one object per member."""
    end = data.rfind(_ZIP_END, max(0, len(data) - _ZIP_END_SEARCH))
    if end < 0 or end + 22 > len(data):
        return None
    count = int.from_bytes(data[end + 10:end + 12], "little")
    locator = end - 20
    if count == 0xFFFF and locator >= 0 and data[locator:locator + 4] == _ZIP64_LOCATOR:
        record = int.from_bytes(data[locator + 8:locator + 16], "little")
        if data[record:record + 4] == _ZIP64_END:
            count = int.from_bytes(data[record + 32:record + 40], "little")
    return count


def _tar_members(data: bytes) -> Iterator[Member]:
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as archive:
        for info in archive:
            opener = _tar_opener(archive, info) if info.isfile() else None
            yield Member(info.name, opener)


def _tar_opener(archive: tarfile.TarFile, info: tarfile.TarInfo) -> Callable[[], Reader]:
    def open_member() -> Reader:
        handle = archive.extractfile(info)
        if handle is None:
            raise UnreadableArchive("tar member has no data")
        return handle.read
    return open_member


def _compressed_member(kind: Container, data: bytes, outer_name: str) -> Member:
    name = (_gzip_stored_name(data) if kind is Container.GZIP else None) \
        or _inner_name(kind, outer_name)
    return Member(name, lambda: _decompressor(kind, data).read)


def _decompressor(kind: Container, data: bytes) -> io.BufferedIOBase:
    if kind is Container.GZIP:
        return gzip.GzipFile(fileobj=io.BytesIO(data))
    if kind is Container.BZIP2:
        return bz2.BZ2File(io.BytesIO(data))
    return lzma.LZMAFile(io.BytesIO(data))


def _inner_name(kind: Container, outer_name: str) -> str:
    lowered = outer_name.lower()
    if lowered.endswith(_TAR_ALIASES):
        return outer_name.rsplit(".", 1)[0] + ".tar"
    for suffix in _COMPRESSED_SUFFIXES.get(kind, ()):
        if lowered.endswith(suffix):
            return outer_name[:-len(suffix)]
    return f"({kind.value} content)"


def _gzip_stored_name(data: bytes) -> str | None:
    """The FNAME field of a gzip header (RFC 1952), if present."""
    flags = data[3] if len(data) > 3 else 0
    if not flags & 0x08:
        return None
    pos = 10
    if flags & 0x04:  # FEXTRA: two-byte length, then the field
        pos += 2 + int.from_bytes(data[10:12], "little")
    end = data.find(b"\x00", pos, pos + 1024)
    if end <= pos:
        return None
    return data[pos:end].decode("latin-1")
