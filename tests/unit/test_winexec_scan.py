"""The winexec scanner on messages built in code: each acceptance case, hostile input,
and every bound (hitting one is reported, never raised)."""

from __future__ import annotations

import time

import pytest

from ie_plugins.winexec import DEFAULT_EXTENSIONS
from ie_plugins.winexec.content import Limits
from ie_plugins.winexec.names import normalise_extensions
from ie_plugins.winexec.scan import Report, scan
from tests.fixtures import winexec_messages as m

EXTENSIONS = normalise_extensions(DEFAULT_EXTENSIONS)
LIMITS = Limits(max_depth=16, max_entries=2000, max_total_bytes=100 * 2**20,
                max_member_size=25 * 2**20)


def run(raw: bytes, limits: Limits = LIMITS) -> Report:
    return scan(raw, EXTENSIONS, limits)


def hit(raw: bytes) -> str:
    report = run(raw)
    assert report.hits, f"no executable found; uninspected: {report.uninspected}"
    return str(report.hits[0])


def clean(raw: bytes) -> Report:
    report = run(raw)
    assert not report.hits, [str(h) for h in report.hits]
    return report


# -- acceptance cases -------------------------------------------------------------------
def test_renamed_exe_declared_as_pdf_is_found_by_content():
    raw = m.mail(("invoice.pdf", m.pe_file(), "application/pdf"))
    assert hit(raw) == "invoice.pdf: Windows executable (PE)"


def test_pe_header_far_into_the_file_is_followed():
    raw = m.mail(("data.bin", m.pe_file(e_lfanew=70000, size=80000), "application/pdf"))
    assert hit(raw) == "data.bin: Windows executable (PE)"


def test_exe_in_zip_in_zip():
    raw = m.mail(("docs.zip", m.nested_zip(2), "application/zip"))
    assert hit(raw) == "docs.zip > level1.zip > setup.exe: file name ending in .exe"


def test_renamed_exe_in_zip_in_zip_is_found_by_content():
    raw = m.mail(("docs.zip", m.nested_zip(2, "photo.jpg"), "application/zip"))
    assert hit(raw) == "docs.zip > level1.zip > photo.jpg: Windows executable (PE)"


def test_exe_in_attached_message():
    inner = m.mail(("setup.bin", m.pe_file(), "application/octet-stream"))
    raw = m.mail_with_attached_message(inner, "forwarded.eml")
    assert hit(raw) == "forwarded.eml > setup.bin: Windows executable (PE)"


def test_exe_in_attached_message_that_is_itself_base64_encoded():
    import base64

    inner = m.mail(("run.dat", m.pe_file(), "application/octet-stream"))
    raw = m.raw_attachment_mail("Content-Type: message/rfc822\r\n"
                                "Content-Transfer-Encoding: base64",
                                base64.encodebytes(inner))
    assert hit(raw) == "(message/rfc822 part) > run.dat: Windows executable (PE)"


def test_eml_file_inside_a_zip_is_read_as_a_message():
    inner = m.mail(("tool.scr", b"harmless bytes", "application/octet-stream"))
    raw = m.mail(("mail.zip", m.zip_of({"old/message.eml": inner}), "application/zip"))
    assert hit(raw) == "mail.zip > old/message.eml > tool.scr: file name ending in .scr"


def test_encrypted_zip_member_names_are_checked():
    raw = m.mail(("secret.zip", m.encrypted_zip(["readme.txt", "setup.exe"]),
                  "application/zip"))
    assert hit(raw) == "secret.zip > setup.exe: file name ending in .exe"


def test_encrypted_zip_with_harmless_names_is_uninspected_not_found():
    report = clean(m.mail(("secret.zip", m.encrypted_zip(["readme.txt"]), "application/zip")))
    assert [str(p) for p in report.uninspected] == [
        "secret.zip > readme.txt: not inspected, encrypted"]


def test_shortcut_by_name_and_by_content():
    assert hit(m.mail(("photo.lnk", b"whatever", "application/octet-stream"))) == \
        "photo.lnk: file name ending in .lnk"
    assert hit(m.mail(("photo.jpg", m.lnk_file(), "image/jpeg"))) == \
        "photo.jpg: Windows shortcut (LNK)"


def test_msi_by_content_but_not_an_office_document():
    assert hit(m.mail(("update.doc", m.msi_file(), "application/msword"))) == \
        "update.doc: Windows installer (MSI)"
    report = clean(m.mail(("letter.doc", m.word97_file(), "application/msword")))
    assert not report.uninspected


def test_corrupt_zip_is_uninspected():
    report = clean(m.mail(("files.zip", m.corrupt_zip(), "application/zip")))
    assert len(report.uninspected) == 1
    assert str(report.uninspected[0]).startswith("files.zip: not inspected, corrupt zip")


@pytest.mark.parametrize("ctype", ["application/octet-stream", "application/x-msdownload"])
def test_text_file_declared_as_binary_passes(ctype):
    report = clean(m.mail(("notes.txt", m.TEXT_FILE, ctype)))
    assert not report.uninspected


def test_file_starting_with_mz_but_no_pe_header_passes():
    report = clean(m.mail(("mz.txt", m.mz_not_pe(), "text/plain")))
    assert not report.uninspected


def test_gzip_containing_an_exe():
    raw = m.mail(("tool.gz", m.gzip_of(m.pe_file(), "tool.bin"), "application/gzip"))
    assert hit(raw) == "tool.gz > tool.bin: Windows executable (PE)"


def test_tar_containing_an_exe():
    tar = m.tar_of({"pkg/README": b"read me", "pkg/run": m.pe_file()})
    assert hit(m.mail(("pkg.tar", tar, "application/x-tar"))) == \
        "pkg.tar > pkg/run: Windows executable (PE)"
    tar = m.tar_of({"pkg/README": b"read me", "pkg/install.bat": b"@echo off"})
    assert hit(m.mail(("pkg.tar", tar, "application/x-tar"))) == \
        "pkg.tar > pkg/install.bat: file name ending in .bat"


def test_tar_gz_containing_an_exe():
    tgz = m.gzip_of(m.tar_of({"run": m.pe_file()}))
    assert hit(m.mail(("pkg.tgz", tgz, "application/gzip"))) == \
        "pkg.tgz > pkg.tar > run: Windows executable (PE)"


@pytest.mark.parametrize("name", ["report.pdf.exe", "REPORT.EXE", "setup.exe. ", "x.Js",
                                  "dir\\run.cmd", "a/b/c.ps1", "app.jar", "go.hta"])
def test_listed_extensions_by_name(name):
    assert "file name ending in" in hit(m.mail((name, b"data", "application/octet-stream")))


@pytest.mark.parametrize("name", ["report.pdf", "photo.exe.jpg", "exe", "notes.txt",
                                  "archive.tar"])
def test_other_names_pass(name):
    clean(m.mail((name, b"data", "application/octet-stream")))


def test_rfc2231_and_rfc2047_file_names_are_decoded():
    rfc2231 = m.raw_attachment_mail(
        "Content-Type: application/octet-stream\r\n"
        "Content-Disposition: attachment; filename*0*=utf-8''Rechnung%20M%C3%A4rz;"
        " filename*1=\".exe\"", b"data")
    assert hit(rfc2231) == "Rechnung März.exe: file name ending in .exe"
    rfc2047 = m.raw_attachment_mail(
        "Content-Type: application/octet-stream; name=\"=?utf-8?B?ZmFjdHVyYS5leGU=?=\"",
        b"data")
    assert hit(rfc2047) == "factura.exe: file name ending in .exe"


def test_content_type_name_is_checked_when_disposition_says_otherwise():
    raw = m.raw_attachment_mail(
        "Content-Type: application/octet-stream; name=\"run.vbs\"\r\n"
        "Content-Disposition: attachment; filename=\"run.txt\"", b"data")
    assert hit(raw) == "run.vbs: file name ending in .vbs"


def test_unopenable_archive_formats():
    for name, data in (("a.rar", b"Rar!\x1a\x07\x00" + bytes(100)),
                       ("a.7z", b"7z\xbc\xaf\x27\x1c" + bytes(100))):
        report = clean(m.mail((name, data, "application/octet-stream")))
        assert "archives cannot be opened" in str(report.uninspected[0])


# -- bombs and bounds -------------------------------------------------------------------
def test_zip_bomb_member_is_only_read_as_far_as_needed():
    raw = m.mail(("bomb.zip", m.zeros_zip_bomb(), "application/zip"))
    started = time.monotonic()
    report = clean(raw)
    assert time.monotonic() - started < 2
    assert report.bytes_read < 1024 * 1024  # 100 MB member, a few KB inflated
    assert not report.uninspected


def test_archive_that_must_be_read_whole_stops_at_the_member_cap():
    limits = Limits(max_depth=16, max_entries=2000, max_total_bytes=100 * 2**20,
                    max_member_size=4 * 2**20)
    raw = m.mail(("bomb.tgz", m.tar_gz_bomb(), "application/gzip"))
    started = time.monotonic()
    report = clean_with(raw, limits)
    assert time.monotonic() - started < 2
    assert [str(p) for p in report.uninspected] == [
        "bomb.tgz > bomb.tar: not inspected, larger than 4194304 bytes"]
    assert report.bytes_read < 6 * 2**20  # the compressed attachment, then 4 MB inflated


def test_total_bytes_bound_stops_the_scan():
    limits = Limits(max_depth=16, max_entries=2000, max_total_bytes=3 * 2**20,
                    max_member_size=25 * 2**20)
    report = clean_with(m.mail(("bomb.tgz", m.tar_gz_bomb(), "application/gzip")), limits)
    assert [str(p) for p in report.uninspected] == [
        f"message: not inspected, more than {3 * 2**20} bytes to inspect"]


def test_zip_nested_deeper_than_the_bound():
    report = clean(m.mail(("deep.zip", m.nested_zip(40), "application/zip")))
    [place] = report.uninspected
    assert str(place).endswith("not inspected, archives nested deeper than 16")
    assert report.entries < 40


def test_depth_bound_is_configurable():
    limits = Limits(max_depth=3, max_entries=2000, max_total_bytes=2**20, max_member_size=2**20)
    assert clean_with(m.mail(("d.zip", m.nested_zip(3), "application/zip")), limits).uninspected
    limits = Limits(max_depth=4, max_entries=2000, max_total_bytes=2**20, max_member_size=2**20)
    assert scan(m.mail(("d.zip", m.nested_zip(3), "application/zip")), EXTENSIONS, limits).hits


def test_entries_bound():
    many = m.zip_of({f"f{i}.txt": b"x" for i in range(300)})
    limits = Limits(max_depth=16, max_entries=100, max_total_bytes=2**20, max_member_size=2**20)
    report = clean_with(m.mail(("many.zip", many, "application/zip")), limits)
    assert [str(p) for p in report.uninspected] == ["message: not inspected, zip declares "
                                                    "300 members"]
    report = clean_with(m.many_parts(300), limits)
    assert str(report.uninspected[0]) == ("message: not inspected, more than 100 parts and "
                                          "archive members")


def clean_with(raw: bytes, limits: Limits) -> Report:
    report = scan(raw, EXTENSIONS, limits)
    assert not report.hits
    return report


# -- hostile input ----------------------------------------------------------------------
def test_undecodable_charsets():
    report = clean(m.undecodable_charsets())
    assert not report.uninspected


def test_broken_base64_is_decoded_leniently():
    assert hit(m.broken_base64(m.pe_file())) == "scan.pdf: Windows executable (PE)"
    clean(m.broken_base64(m.TEXT_FILE))


def test_20_mb_attachment_is_quick():
    raw = m.big_attachment_mail(20 * 2**20)
    started = time.monotonic()
    report = clean(raw)
    assert time.monotonic() - started < 1
    assert report.bytes_read < 64 * 1024
    assert not report.uninspected
    renamed = raw.replace(b'name="big.pdf"', b'name="big.pdf.exe"')
    assert hit(renamed) == "big.pdf.exe: file name ending in .exe"


def test_thousand_mime_parts():
    started = time.monotonic()
    report = clean(m.many_parts(1000))
    assert time.monotonic() - started < 3
    assert report.entries == 1001 and not report.uninspected


def test_deeply_nested_multiparts_are_bounded():
    leaf = (b"Content-Type: application/octet-stream; name=\"a.bin\"\r\n"
            b"Content-Transfer-Encoding: base64\r\n\r\n" +
            __import__("base64").encodebytes(m.pe_file()))
    started = time.monotonic()
    report = clean(m.deeply_nested_multipart(5000, leaf))
    assert time.monotonic() - started < 3
    assert [str(p) for p in report.uninspected] == [
        "message: not inspected, MIME parts nested deeper than 16"]
    assert hit(m.deeply_nested_multipart(10, leaf)) == "a.bin: Windows executable (PE)"


def test_truncated_and_garbage_messages_never_raise():
    samples = [b"", b"\r\n", b"garbage", b"Content-Type: multipart/mixed; boundary=x\r\n\r\n",
               b"Content-Type: multipart/mixed; boundary=x\r\n\r\n--x\r\n",
               b"Content-Type: multipart/mixed; boundary=\"\"\r\n\r\n--\r\n--\r\n",
               b"Content-Type: message/rfc822\r\n\r\n",
               b"Content-Type: application/zip\r\nContent-Transfer-Encoding: base64\r\n\r\n"
               b"UEsDBA==", m.mail(("x.zip", b"PK\x03\x04" + bytes(30), "application/zip"))]
    full = m.mail(("docs.zip", m.nested_zip(3), "application/zip"))
    samples += [full[:n] for n in range(0, len(full), max(1, len(full) // 50))]
    for raw in samples:
        run(raw)


def test_exe_named_or_declared_as_a_message_is_still_checked_by_content():
    raw = m.mail(("invoice.eml", m.pe_file(), "application/octet-stream"))
    assert hit(raw) == "invoice.eml: Windows executable (PE)"
    raw = m.raw_attachment_mail("Content-Type: message/rfc822", m.pe_file())
    assert hit(raw) == "(message/rfc822 part): Windows executable (PE)"
    raw = m.mail(("old.zip", m.zip_of({"mail.eml": m.pe_file()}), "application/zip"))
    assert hit(raw) == "old.zip > mail.eml: Windows executable (PE)"


@pytest.mark.parametrize("name,compress", [("tool.bz2", "bz2"), ("tool.xz", "lzma")])
def test_bzip2_and_xz_containing_an_exe(name, compress):
    import importlib

    data = importlib.import_module(compress).compress(m.pe_file())
    assert hit(m.mail((name, data, "application/octet-stream"))) == \
        f"{name} > tool: Windows executable (PE)"


def test_corrupt_gzip_content_is_uninspected():
    data = m.gzip_of(m.TEXT_FILE * 50)
    report = clean(m.mail(("notes.gz", data[:20] + b"\xff" * 40 + data[60:], "application/gzip")))
    [place] = report.uninspected
    assert str(place).startswith("notes.gz > notes: not inspected, cannot read (")


def test_mutated_messages_never_raise():
    import random

    rng = random.Random(5)
    inner = m.mail(("a.tgz", m.gzip_of(m.tar_of({"x": m.TEXT_FILE})), "application/gzip"))
    base = m.mail(("docs.zip", m.nested_zip(3, "notes.txt", m.TEXT_FILE), "application/zip"),
                  ("fwd.eml", inner, "message/rfc822"),
                  ("b.bz2", __import__("bz2").compress(m.TEXT_FILE), "application/x-bzip2"))
    assert not run(base).hits
    for _ in range(300):
        mutated = bytearray(base)
        for _ in range(rng.randint(1, 20)):
            mutated[rng.randrange(len(mutated))] = rng.randrange(256)
        run(bytes(mutated))
