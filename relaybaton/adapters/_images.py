"""Images from the edges: a ``data:`` or ``http(s)`` URL, or a file, as an ``ImagePart``.

The OpenAI-compatible endpoint's ``image_url`` parts, the native API's ``images`` field and
``relaybaton run --image PATH`` all come through here, so an image is checked once, the
same way: a media type providers take (PNG, JPEG, GIF, WebP), base64 that decodes, a size
under the limit. An ``http(s)`` URL is passed on for the provider to fetch.
"""

from __future__ import annotations

import base64
import binascii
import re
from pathlib import Path

from relaybaton.adapters._chat import ImagePart
from relaybaton.errors import ConfigError

__all__ = ["MEDIA_TYPES", "MAX_IMAGE_BYTES", "image_from_file", "image_from_url"]

MEDIA_TYPES = ("image/png", "image/jpeg", "image/gif", "image/webp")
MAX_IMAGE_BYTES = 20 * 1024 * 1024  # OpenAI's and Anthropic's per-image limit is near this
_DATA_URL = re.compile(r"^data:(?P<type>[\w.+-]+/[\w.+-]+);base64,(?P<data>.*)$", re.S)
_SUFFIXES = {
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".gif": "image/gif",
    ".webp": "image/webp",
}


def _checked(media_type: str, data: str, where: str) -> ImagePart:
    if media_type not in MEDIA_TYPES:
        raise ConfigError(
            f"{where}: media type {media_type!r} is not an image providers take; "
            f"send one of {', '.join(MEDIA_TYPES)}"
        )
    try:
        raw = base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ConfigError(f"{where}: the image's base64 does not decode ({exc})") from exc
    if not raw:
        raise ConfigError(f"{where}: the image is empty")
    if len(raw) > MAX_IMAGE_BYTES:
        raise ConfigError(
            f"{where}: the image is {len(raw)} bytes; at most {MAX_IMAGE_BYTES} are allowed"
        )
    return ImagePart(media_type=media_type, data_base64=data)


def image_from_url(url: str, where: str = "image") -> ImagePart:
    """An image from a ``data:<type>;base64,...`` URL or an ``http(s)`` URL.

    Raises:
        ConfigError: another scheme, a media type providers do not take, bad base64, or
            too large; the message starts with ``where``.
    """
    if url.startswith(("https://", "http://")):
        return ImagePart(url=url)
    match = _DATA_URL.match(url)
    if match is None:
        raise ConfigError(
            f"{where}: expected a data:image/...;base64,... URL or an http(s) URL, got {url[:40]!r}"
        )
    return _checked(match.group("type"), match.group("data"), where)


def image_from_file(path: str | Path) -> ImagePart:
    """An image read from a file; its media type from the suffix.

    Raises:
        ConfigError: no such file, an unknown suffix, or too large.
    """
    file = Path(path)
    media_type = _SUFFIXES.get(file.suffix.lower())
    if media_type is None:
        raise ConfigError(
            f"--image {path}: unknown image type {file.suffix!r}; use one of "
            f"{', '.join(sorted(_SUFFIXES))}"
        )
    try:
        raw = file.read_bytes()
    except OSError as exc:
        raise ConfigError(f"--image {path}: cannot read it ({exc.strerror or exc})") from exc
    return _checked(media_type, base64.b64encode(raw).decode("ascii"), f"--image {path}")
