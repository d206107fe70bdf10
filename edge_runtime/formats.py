"""Which file formats the runtime decodes, recognised from their first bytes.

Pillow identifies a file by offering it to every plugin it has, and some plugins do far more
than parse pixels: the EPS plugin runs Ghostscript when a ``gs`` is on PATH, others (DDS,
SPIDER, ...) are rarely exercised and fail with exception types no caller expects. A scanner's
export folder should only ever hold ordinary raster images, so the runtime looks at the magic
bytes itself and hands Pillow an explicit one-format list: a file that is not one of the
formats below is refused before any Pillow plugin sees it, whatever its name.
"""

from __future__ import annotations

# Importing the allowed plugins up front means ``Image.open(..., formats=[...])`` finds them
# registered and never falls back to ``Image.init()``'s import of every plugin.
from PIL import BmpImagePlugin, GifImagePlugin, JpegImagePlugin, PngImagePlugin, TiffImagePlugin  # noqa: F401

try:  # WebP support is optional in Pillow builds (libwebp); without it WebP files are refused.
    from PIL import WebPImagePlugin  # noqa: F401
except ImportError:  # pragma: no cover - depends on the Pillow build
    WebPImagePlugin = None

#: Bytes needed by :func:`sniff`.
HEAD_BYTES = 16

#: Pillow format name -> what the runtime calls it in messages. GIF and TIFF: first frame/page.
ALLOWED_FORMATS: dict[str, str] = {
    "JPEG": "JPEG",
    "PNG": "PNG",
    "BMP": "BMP",
    "TIFF": "TIFF",
    "WEBP": "WebP",
    "GIF": "GIF",
}


def sniff(head: bytes) -> str | None:
    """Pillow format name of an allowed format from the file's first bytes, else ``None``."""
    if head.startswith(b"\xff\xd8\xff"):
        return "JPEG"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "PNG"
    if head.startswith(b"BM") and len(head) >= 14:
        return "BMP"
    if head[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"):
        return "TIFF"
    if head.startswith(b"RIFF") and head[8:12] == b"WEBP":
        return "WEBP" if WebPImagePlugin is not None else None
    if head.startswith((b"GIF87a", b"GIF89a")):
        return "GIF"
    return None


def describe_unknown(head: bytes) -> str:
    """A short, printable hint at what an unrecognised file starts with (for error messages)."""
    if head.startswith((b"%!PS", b"\xc5\xd0\xd3\xc6")):
        return "PostScript/EPS"
    if head.startswith(b"DDS "):
        return "DDS"
    if head.startswith(b"%PDF"):
        return "PDF"
    shown = head[:8]
    return "bytes " + shown.hex(" ") if shown else "no bytes"
