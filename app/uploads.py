"""Request body -> the uploaded files' bytes, within the upload limits.

Two encodings: multipart with one or more `file` fields, or JSON `{"images": ["<base64>", ...]}`
(data: URLs such as a canvas's `toDataURL()` are accepted). The size limit is enforced twice: a
declared Content-Length over it is refused before reading anything, and the bytes are counted
as they stream in, so a chunked or lying upload is cut off at the limit, never held in full.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import dataclass
from typing import Any

from fastapi import Request
from python_multipart.multipart import parse_options_header
from starlette.datastructures import FormData, UploadFile
from starlette.formparsers import MultiPartException, MultiPartParser

from app.errors import EmptyUpload, InvalidUpload, TooManyImages, UnsupportedMediaType, UploadTooLarge
from app.settings import Settings

FIELD = "file"


@dataclass(frozen=True)
class Upload:
    """One uploaded image and the name an error about it gives: its filename, or `images[i]`."""

    name: str
    data: bytes


async def read_images(request: Request, settings: Settings) -> list[Upload]:
    limit = settings.max_upload_bytes
    declared = refuse_declared_over(request, limit, "max_upload_bytes")
    if declared == "0":
        raise EmptyUpload("the body is empty: send multipart field 'file' or JSON {\"images\": [...]}")
    content_type = media_type(request)
    body = counted(request.stream(), limit)
    if content_type == "multipart/form-data":
        files = await from_multipart(request, body, settings.max_images_per_request)
    elif is_json(content_type):
        files = from_json(b"".join([chunk async for chunk in body]), settings.max_images_per_request)
    else:
        raise UnsupportedMediaType(
            f"content type {content_type or '(none)'} is not accepted; send multipart/form-data or JSON"
        )
    if not files:
        raise EmptyUpload(
            f'no image in the request: send multipart field {FIELD!r} or JSON {{"images": [...]}}'
        )
    if len(files) > settings.max_images_per_request:
        raise TooManyImages(
            f"{len(files)} images in one request; the limit is {settings.max_images_per_request}",
            {"max_images_per_request": settings.max_images_per_request},
        )
    if empty := [upload.name for upload in files if not upload.data]:
        raise EmptyUpload(f"{empty[0]} is empty (0 bytes)", {"filename": empty[0]})
    return files


def media_type(request: Request) -> str:
    return request.headers.get("content-type", "").split(";")[0].strip().lower()


def is_json(content_type: str) -> bool:
    return content_type == "application/json" or content_type.endswith("+json")


async def read_body(request: Request, limit: int, limit_name: str = "max_upload_bytes") -> bytes:
    """A whole body that is not an upload of files (JSON, a V2 request), within `limit` bytes."""
    refuse_declared_over(request, limit, limit_name)
    if request.headers.get("content-encoding", "identity") != "identity":
        raise InvalidUpload("compressed request bodies are not accepted; send the body as it is")
    return b"".join([chunk async for chunk in counted(request.stream(), limit, limit_name)])


def refuse_declared_over(request: Request, limit: int, limit_name: str) -> str | None:
    """413 before reading a body whose Content-Length is over `limit`; returns the header."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise UploadTooLarge(f"the body is {declared} bytes; the limit is {limit}", {limit_name: limit})
    return declared


async def counted(
    stream: AsyncIterator[bytes], limit: int, limit_name: str = "max_upload_bytes"
) -> AsyncGenerator[bytes, None]:
    received = 0
    async for chunk in stream:
        received += len(chunk)
        if received > limit:
            raise UploadTooLarge(f"the body exceeds the limit of {limit} bytes", {limit_name: limit})
        yield chunk


class CloseDelimiter:
    """Watches a multipart body for its close delimiter, `--boundary--` (RFC 2046, 5.1.1). The
    parser accepts a body that ends without one and drops the part it was reading, so a cut-short
    upload would be answered for fewer images than were sent."""

    def __init__(self, boundary: bytes) -> None:
        self.delimiter = b"\r\n--" + boundary + b"--"
        self.seen = False
        self.tail = b"\r\n"  # the first delimiter may open the body: no CRLF before it

    async def watch(self, stream: AsyncIterator[bytes]) -> AsyncGenerator[bytes, None]:
        async for chunk in stream:
            if not self.seen:
                window = self.tail + chunk
                self.seen = self.delimiter in window  # a part's content never holds CRLF--boundary
                self.tail = window[1 - len(self.delimiter) :]
            yield chunk


async def from_multipart(request: Request, body: AsyncGenerator[bytes, None], max_files: int) -> list[Upload]:
    _, options = parse_options_header(request.headers.get("content-type", ""))
    close = CloseDelimiter(options.get(b"boundary", b""))
    parser = MultiPartParser(request.headers, close.watch(body), max_files=max_files, max_fields=max_files)
    try:
        form = await parser.parse()
    except MultiPartException as e:
        if e.message.startswith("Too many files"):  # Starlette stops counting at max_files
            raise TooManyImages(f"too many images in one request; the limit is {max_files}") from e
        raise InvalidUpload(f"malformed multipart body: {e.message}") from e
    try:
        if not close.seen:
            raise InvalidUpload(
                "the multipart body ends before its closing boundary: the upload was cut short, and "
                "nothing in it was used; send it again whole"
            )
        parts = files_of(form)
        return [Upload(part.filename or f"{FIELD}[{i}]", await part.read()) for i, part in enumerate(parts)]
    finally:
        await form.close()


def files_of(form: FormData) -> list[UploadFile]:
    """The form's images, field `FIELD`; refused whole when one was sent some other way, which the
    parser would let pass as text or as a field nobody reads."""
    if misnamed := [name for name, part in form.multi_items() if name != FIELD and not isinstance(part, str)]:
        raise InvalidUpload(
            f"multipart field {misnamed[0]!r} holds a file, but images are read from field {FIELD!r} "
            f"alone, and nothing in the request was used: send each image as {FIELD!r}",
            {"field": misnamed[0]},
        )
    parts = form.getlist(FIELD)
    if texts := [i for i, part in enumerate(parts) if isinstance(part, str)]:
        raise InvalidUpload(
            f"multipart field {FIELD!r} number {texts[0]} has no filename, so it arrived as text, not "
            f"as a file, and nothing in the request was used: send each image as a file "
            f"(curl -F {FIELD}=@digit.png)",
            {"index": texts[0]},
        )
    return [part for part in parts if not isinstance(part, str)]


def parse_json(raw: bytes) -> Any:
    """A client's JSON: bad syntax, or nesting deeper than the parser's stack, is the client's 400."""
    try:
        return json.loads(raw)
    except ValueError as e:  # bad syntax or encoding, an integer too long to convert
        raise InvalidUpload(f"the body is not valid JSON: {e}") from e
    except RecursionError as e:  # never a valid request, and never a 500
        raise InvalidUpload("the body's JSON is nested too deeply") from e


def from_json(raw: bytes, max_images: int) -> list[Upload]:
    """The images of `{"images": [...]}`, counted before any is decoded."""
    if not raw:
        raise EmptyUpload("the body is empty")
    payload = parse_json(raw)
    images = payload.get("images") if isinstance(payload, dict) else None
    if not isinstance(images, list) or not all(isinstance(item, str) for item in images):
        raise InvalidUpload('expected a JSON object {"images": ["<base64>", ...]}')
    if len(images) > max_images:
        raise TooManyImages(
            f"{len(images)} images in one request; the limit is {max_images}",
            {"max_images_per_request": max_images},
        )
    return [Upload(f"images[{index}]", decode_base64(item, index)) for index, item in enumerate(images)]


def decode_base64(text: str, index: int) -> bytes:
    if text.startswith("data:"):
        text = text.partition(",")[2]
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as e:
        raise InvalidUpload(f"images[{index}] is not valid base64: {e}") from e
