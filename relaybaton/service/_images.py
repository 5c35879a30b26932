"""Images in a request body, checked at the edge: a bad one is a 400 naming its field."""

from __future__ import annotations

from relaybaton.adapters import ImagePart
from relaybaton.adapters._images import image_from_url
from relaybaton.errors import ConfigError
from relaybaton.service._errors import ApiError

__all__ = ["MAX_IMAGES", "images_in"]

MAX_IMAGES = 8  # per message; the body limit bounds their bytes


def images_in(urls: list[str], field: str) -> tuple[ImagePart, ...]:
    """The images of one message from their URLs, or a 400 that says which is wrong."""
    if len(urls) > MAX_IMAGES:
        raise ApiError(
            400,
            f"{len(urls)} images in one message; at most {MAX_IMAGES} are allowed",
            code="too_many_images",
            param=field,
        )
    images: list[ImagePart] = []
    for index, url in enumerate(urls):
        try:
            images.append(image_from_url(url, f"{field}[{index}]"))
        except ConfigError as exc:
            raise ApiError(400, str(exc), code="invalid_image", param=field) from exc
    return tuple(images)
