"""Recognising files by their first bytes: Windows executables and the containers we open.

Functions take ``head(n)``, a callable returning (at most) the first ``n`` bytes of the
file, so a detector that needs to look further (a PE header far into the file, an MSI's
directory sector) reads only as much as it needs.
"""

from __future__ import annotations

from collections.abc import Callable
from enum import StrEnum

Head = Callable[[int], bytes]

SNIFF_SIZE = 4096
"""Bytes every file is read for before deciding what it is."""

OLE_SIGNATURE = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
# Shell link header: HeaderSize 0x4C, then LinkCLSID 00021401-0000-0000-C000-000000000046.
LNK_SIGNATURE = (b"\x4c\x00\x00\x00\x01\x14\x02\x00\x00\x00\x00\x00"
                 b"\xc0\x00\x00\x00\x00\x00\x00\x46")
# Root storage CLSIDs of Windows Installer files (stored little-endian):
# 000C1084 package (.msi, .msm), 000C1086 patch (.msp), 000C1082 transform (.mst).
_INSTALLER_CLSIDS = frozenset(
    bytes([b, 0x10, 0x0C, 0x00, 0, 0, 0, 0, 0xC0, 0, 0, 0, 0, 0, 0, 0x46])
    for b in (0x84, 0x86, 0x82))
_OLE_DIR_ENTRY_CLSID = 0x50
_OLE_SPECIAL_SECTORS = 0xFFFFFFFA  # this and above: free/end-of-chain/... markers


class Container(StrEnum):
    """Formats that hold other files."""

    ZIP = "zip"
    GZIP = "gzip"
    BZIP2 = "bzip2"
    XZ = "xz"
    TAR = "tar"
    # formats we recognise but do not open
    RAR = "rar"
    SEVEN_ZIP = "7z"
    CAB = "cab"

    @property
    def openable(self) -> bool:
        return self not in (Container.RAR, Container.SEVEN_ZIP, Container.CAB)


def executable_kind(head: Head) -> str | None:
    """What kind of Windows executable the file is, by content; ``None`` if it is not one.

    An OLE compound file alone is not enough (Word and Excel 97 documents are OLE files
    too): only a root storage with a Windows Installer CLSID counts.
    """
    start = head(SNIFF_SIZE)
    if start[:2] == b"MZ" and _is_pe(start, head):
        return "Windows executable (PE)"
    if start.startswith(OLE_SIGNATURE) and _is_installer(start, head):
        return "Windows installer (MSI)"
    if start.startswith(LNK_SIGNATURE):
        return "Windows shortcut (LNK)"
    return None


def _is_pe(start: bytes, head: Head) -> bool:
    if len(start) < 0x40:
        return False
    e_lfanew = int.from_bytes(start[0x3C:0x40], "little")
    if e_lfanew < 4:
        return False
    data = start if e_lfanew + 4 <= len(start) else head(e_lfanew + 4)
    return data[e_lfanew:e_lfanew + 4] == b"PE\x00\x00"


def _is_installer(start: bytes, head: Head) -> bool:
    if len(start) < 0x34:
        return False
    sector_shift = int.from_bytes(start[0x1E:0x20], "little")
    if sector_shift not in (9, 12):
        return False
    first_dir_sector = int.from_bytes(start[0x30:0x34], "little")
    if first_dir_sector >= _OLE_SPECIAL_SECTORS:
        return False
    root = (first_dir_sector + 1) << sector_shift
    end = root + _OLE_DIR_ENTRY_CLSID + 16
    data = start if end <= len(start) else head(end)
    return data[root + _OLE_DIR_ENTRY_CLSID:end] in _INSTALLER_CLSIDS


def container_kind(start: bytes) -> Container | None:
    """The container format of a file from its first :data:`SNIFF_SIZE` bytes."""
    if start[:4] in (b"PK\x03\x04", b"PK\x05\x06", b"PK\x07\x08"):
        return Container.ZIP
    if start[:3] == b"\x1f\x8b\x08":
        return Container.GZIP
    if start[:3] == b"BZh" and start[3:4].isdigit():
        return Container.BZIP2
    if start[:6] == b"\xfd7zXZ\x00":
        return Container.XZ
    if start[257:262] == b"ustar":
        return Container.TAR
    if start[:6] == b"Rar!\x1a\x07":
        return Container.RAR
    if start[:6] == b"7z\xbc\xaf\x27\x1c":
        return Container.SEVEN_ZIP
    if start[:8] == b"MSCF\x00\x00\x00\x00":
        return Container.CAB
    return None
