"""Binary documents built from their specifications, for tests, the hostile corpus and the
samples in examples/formats/ (``python -m tests.support.documents`` rewrites those).

Small and deterministic: a PDF with a text layer (Helvetica, one content stream per page),
optionally encrypted with the standard security handler (RC4, 40-bit, revision 2) so that
it needs a password; a page of vector graphics only (what a scan looks like to a text
extractor); DOCX and ODT packages with core properties; a DOCX whose document part is a
zip bomb.
"""

from __future__ import annotations

import hashlib
import io
import zipfile
from pathlib import Path

_PAD = bytes.fromhex("28BF4E5E4E758A4164004E56FFFA01082E2E00B6D0683E802F0CA9FE6453697A")


def _rc4(key: bytes, data: bytes) -> bytes:
    s = list(range(256))
    j = 0
    for i in range(256):
        j = (j + s[i] + key[i % len(key)]) % 256
        s[i], s[j] = s[j], s[i]
    out = bytearray()
    i = j = 0
    for byte in data:
        i = (i + 1) % 256
        j = (j + s[i]) % 256
        s[i], s[j] = s[j], s[i]
        out.append(byte ^ s[(s[i] + s[j]) % 256])
    return bytes(out)


def _pdf_string(text: str) -> bytes:
    return b"(" + text.encode("cp1252").replace(b"\\", b"\\\\").replace(b"(", b"\\(").replace(b")", b"\\)") + b")"


def pdf(
    pages: list[list[str]],
    *,
    info: dict[str, str] | None = None,
    user_password: str | None = None,
    graphics_only: bool = False,
) -> bytes:
    """A PDF whose pages hold these lines of text (or, ``graphics_only``, a drawn rectangle
    and no text at all); ``user_password`` encrypts it (RC4 40-bit, revision 2)."""
    file_id = hashlib.md5(repr((pages, info)).encode(), usedforsecurity=False).digest()
    key = b""
    o_value = u_value = b""
    permissions = -4
    if user_password is not None:
        owner_key = hashlib.md5(_PAD, usedforsecurity=False).digest()[:5]  # empty owner password
        user = (user_password.encode() + _PAD)[:32]
        o_value = _rc4(owner_key, user)
        digest = hashlib.md5(
            user + o_value + permissions.to_bytes(4, "little", signed=True) + file_id, usedforsecurity=False
        ).digest()
        key = digest[:5]
        u_value = _rc4(key, _PAD)

    def protect(number: int, data: bytes) -> bytes:
        if not key:
            return data
        object_key = hashlib.md5(key + number.to_bytes(3, "little") + b"\0\0", usedforsecurity=False).digest()[:10]
        return _rc4(object_key, data)

    objects: dict[int, bytes] = {}
    page_numbers = []
    next_number = 4
    for lines in pages:
        page_number, content_number = next_number, next_number + 1
        next_number += 2
        page_numbers.append(page_number)
        if graphics_only:
            stream = b"0.5 g 72 72 451 648 re f"
        else:
            ops = [b"BT /F1 12 Tf 72 720 Td 16 TL"]
            ops += [_pdf_string(line) + b" Tj T*" for line in lines]
            ops.append(b"ET")
            stream = b"\n".join(ops)
        stream = protect(content_number, stream)
        objects[page_number] = (
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Resources << /Font << /F1 3 0 R >> >>"
            b" /Contents " + str(content_number).encode() + b" 0 R >>"
        )
        objects[content_number] = b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream"
    objects[1] = b"<< /Type /Catalog /Pages 2 0 R >>"
    kids = b" ".join(b"%d 0 R" % n for n in page_numbers)
    objects[2] = b"<< /Type /Pages /Kids [" + kids + b"] /Count %d >>" % len(page_numbers)
    objects[3] = b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>"
    info_number = encrypt_number = None
    if info:
        info_number = next_number
        next_number += 1
        entries = b" ".join(
            b"/" + k.encode() + b" " + (b"<" + protect(info_number, v.encode("cp1252")).hex().encode() + b">")
            for k, v in info.items()
        )
        objects[info_number] = b"<< " + entries + b" >>"
    if key:
        encrypt_number = next_number
        next_number += 1
        objects[encrypt_number] = (
            b"<< /Filter /Standard /V 1 /R 2 /Length 40 /P %d /O <" % permissions
            + o_value.hex().encode()
            + b"> /U <"
            + u_value.hex().encode()
            + b"> >>"
        )
    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = {}
    for number in sorted(objects):
        offsets[number] = len(out)
        out += b"%d 0 obj\n" % number + objects[number] + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % next_number
    for number in range(1, next_number):
        out += b"%010d 00000 n \n" % offsets[number]
    trailer = b"<< /Size %d /Root 1 0 R" % next_number
    if info_number:
        trailer += b" /Info %d 0 R" % info_number
    if encrypt_number:
        trailer += b" /Encrypt %d 0 R" % encrypt_number
    trailer += b" /ID [<" + file_id.hex().encode() + b"> <" + file_id.hex().encode() + b">] >>"
    out += b"trailer\n" + trailer + b"\nstartxref\n%d\n%%%%EOF\n" % xref
    return bytes(out)


_W = "http://schemas.openxmlformats.org/wordprocessingml/2006/main"


def _xml_text(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def docx(
    paragraphs: list[tuple[str | None, str]],
    *,
    title: str | None = None,
    creator: str | None = None,
    created: str | None = None,
    document_xml: bytes | None = None,
) -> bytes:
    """A DOCX package: ``(style, text)`` paragraphs (style e.g. ``Title``, ``Heading1``)."""
    body = []
    for style, text in paragraphs:
        props = f'<w:pPr><w:pStyle w:val="{style}"/></w:pPr>' if style else ""
        # Two runs per paragraph, split mid-word, with indentation between them: as Word writes.
        half = len(text) // 2
        body.append(
            f'<w:p>{props}\n  <w:r><w:t xml:space="preserve">{_xml_text(text[:half])}</w:t></w:r>\n'
            f'  <w:r><w:t xml:space="preserve">{_xml_text(text[half:])}</w:t></w:r>\n</w:p>'
        )
    document = (
        document_xml
        or (
            f'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n<w:document xmlns:w="{_W}"><w:body>'
            + "\n".join(body)
            + "<w:sectPr/></w:body></w:document>"
        ).encode()
    )
    core_fields = "".join(
        f"<{tag}>{_xml_text(value)}</{tag}>" for tag, value in (("dc:title", title), ("dc:creator", creator)) if value
    )
    if created:
        core_fields += f'<dcterms:created xsi:type="dcterms:W3CDTF">{created}</dcterms:created>'
    core = (
        '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n<cp:coreProperties'
        ' xmlns:cp="http://schemas.openxmlformats.org/package/2006/metadata/core-properties"'
        ' xmlns:dc="http://purl.org/dc/elements/1.1/" xmlns:dcterms="http://purl.org/dc/terms/"'
        ' xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">' + core_fields + "</cp:coreProperties>"
    )
    content_types = (
        '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
        '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
        '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
        '<Default Extension="xml" ContentType="application/xml"/>'
        '<Override PartName="/word/document.xml" ContentType="application/vnd.openxmlformats-officedocument.'
        'wordprocessingml.document.main+xml"/>'
        '<Override PartName="/docProps/core.xml" ContentType="application/vnd.openxmlformats-package.'
        'core-properties+xml"/></Types>'
    )
    rels = (
        '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
        '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
        '<Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/'
        'officeDocument" Target="word/document.xml"/>'
        '<Relationship Id="rId2" Type="http://schemas.openxmlformats.org/package/2006/relationships/metadata/'
        'core-properties" Target="docProps/core.xml"/></Relationships>'
    )
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, data in (
            ("[Content_Types].xml", content_types.encode()),
            ("_rels/.rels", rels.encode()),
            ("word/document.xml", document),
            ("docProps/core.xml", core.encode()),
        ):
            zf.writestr(zipfile.ZipInfo(name, (2026, 11, 24, 9, 30, 0)), data, compress_type=zipfile.ZIP_DEFLATED)
    return buf.getvalue()


def docx_zip_bomb(inflated_bytes: int = 200 * 1024 * 1024) -> bytes:
    """A DOCX whose document part inflates from ~200 KiB to ``inflated_bytes``."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
        zf.writestr("[Content_Types].xml", b"<Types/>")
        with zf.open("word/document.xml", "w", force_zip64=True) as member:
            member.write(f'<w:document xmlns:w="{_W}"><w:body><w:p><w:r><w:t>'.encode())
            chunk = b" " * (1024 * 1024)
            for _ in range(inflated_bytes // len(chunk)):
                member.write(chunk)
            member.write(b"</w:t></w:r></w:p></w:body></w:document>")
    return buf.getvalue()


_ODF = {
    "office": "urn:oasis:names:tc:opendocument:xmlns:office:1.0",
    "text": "urn:oasis:names:tc:opendocument:xmlns:text:1.0",
    "meta": "urn:oasis:names:tc:opendocument:xmlns:meta:1.0",
    "dc": "http://purl.org/dc/elements/1.1/",
    "manifest": "urn:oasis:names:tc:opendocument:xmlns:manifest:1.0",
}


def odt(
    paragraphs: list[tuple[int | None, str]],
    *,
    title: str | None = None,
    creator: str | None = None,
    created: str | None = None,
    encrypted: bool = False,
) -> bytes:
    """An ODT package: ``(heading level or None, text)`` paragraphs; ``encrypted`` marks the
    content encrypted in the manifest, as LibreOffice does for a password-protected file."""
    ns = " ".join(f'xmlns:{k}="{v}"' for k, v in _ODF.items())
    body = []
    for level, text in paragraphs:
        words = _xml_text(text).split(" ", 2)
        # Mixed content as LibreOffice writes it: a span, a run of spaces (text:s), a tail.
        inner = (
            f'<text:span>{words[0]}</text:span><text:s text:c="1"/>{" ".join(words[1:])}'
            if len(words) > 1
            else _xml_text(text)
        )
        if level:
            body.append(f'<text:h text:outline-level="{level}">{inner}</text:h>')
        else:
            body.append(f"<text:p>{inner}</text:p>")
    content = (
        f'<?xml version="1.0" encoding="UTF-8"?>\n<office:document-content {ns} office:version="1.3">'
        f"<office:body><office:text>{''.join(body)}</office:text></office:body></office:document-content>"
    )
    meta_fields = "".join(
        f"<{tag}>{_xml_text(value)}</{tag}>"
        for tag, value in (("dc:title", title), ("meta:initial-creator", creator), ("meta:creation-date", created))
        if value
    )
    meta = (
        f'<?xml version="1.0" encoding="UTF-8"?>\n<office:document-meta {ns} office:version="1.3">'
        f"<office:meta>{meta_fields}</office:meta></office:document-meta>"
    )
    encryption = (
        '<manifest:encryption-data manifest:checksum-type="SHA1/1K" manifest:checksum="AAAA">'
        '<manifest:algorithm manifest:algorithm-name="Blowfish CFB" manifest:initialisation-vector="AAAA"/>'
        "</manifest:encryption-data>"
        if encrypted
        else ""
    )
    manifest = (
        f'<?xml version="1.0" encoding="UTF-8"?>\n<manifest:manifest {ns} manifest:version="1.3">'
        '<manifest:file-entry manifest:full-path="/" manifest:media-type="application/vnd.oasis.opendocument.text"/>'
        f'<manifest:file-entry manifest:full-path="content.xml" manifest:media-type="text/xml">{encryption}'
        "</manifest:file-entry></manifest:manifest>"
    )
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        stamp = (2026, 11, 24, 9, 30, 0)
        zf.writestr(zipfile.ZipInfo("mimetype", stamp), b"application/vnd.oasis.opendocument.text")
        for name, data in (("content.xml", content), ("meta.xml", meta), ("META-INF/manifest.xml", manifest)):
            zf.writestr(zipfile.ZipInfo(name, stamp), data.encode(), compress_type=zipfile.ZIP_DEFLATED)
    return buf.getvalue()


# -- the samples in examples/formats/ ------------------------------------------------------------

REPORT_LINES = [
    "Harbour Authority Annual Report",
    "",
    "The harbour handled more ferry crossings than in any year before, the authority said on",
    "Tuesday, and plans a night service between the two islands from the spring.",
]


def samples() -> dict[str, bytes]:
    return {
        "report.pdf": pdf(
            [REPORT_LINES, ["Page two: the budget for dredging the outer channel was approved by the board."]],
            info={
                "Title": "Harbour Authority Annual Report",
                "Author": "Harbour Authority Press Office",
                "CreationDate": "D:20261124093000+01'00'",
            },
        ),
        "scanned.pdf": pdf([[]], graphics_only=True),
        "report.docx": docx(
            [
                ("Title", "City approves new tram line"),
                (
                    None,
                    "LEEDS (AP) — The city council on Wednesday approved a new tram line linking the station with"
                    " the university, after years of delays.",
                ),
                ("Heading1", "What happens next"),
                (None, "Building work starts in the summer and the first trams should run within three years."),
            ],
            creator="Jane Doe",
            created="2026-11-24T09:30:00Z",
        ),
        "report.odt": odt(
            [
                (1, "Orchestra returns to the market hall"),
                (None, "The city orchestra played its first concert in the restored market hall on Saturday night."),
                (None, "Tickets for the winter season sold out within an hour, the box office said."),
            ],
            title="Orchestra returns to the market hall",
            creator="Sam Reyes",
            created="2026-11-23T10:00:00",
        ),
    }


if __name__ == "__main__":
    folder = Path(__file__).resolve().parents[2] / "examples" / "formats"
    for name, data in samples().items():
        (folder / name).write_bytes(data)
        print(f"{folder / name}: {len(data)} bytes")
