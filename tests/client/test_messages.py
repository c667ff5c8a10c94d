"""User-facing error text: headline and advice first, server and object last, no reprs."""

from __future__ import annotations

import httpx

from napari_lablink.client.errors import NotFoundError, ServerError, plain_text
from napari_lablink.client.transport import describe_response


def test_headline_and_advice_come_before_the_server_and_object() -> None:
    exc = NotFoundError("Not found", server="mikro+http://127.0.0.1:8080", obj="image 3")
    text = str(exc)
    assert text.startswith("Not found. Check the id or path")
    assert text.endswith("[server mikro+http://127.0.0.1:8080, image 3]")
    assert text.index("Check the id") < text.index("mikro+http://")


def test_no_doubled_full_stop() -> None:
    assert str(ServerError("The server failed.", hint="Try again later.")) == (
        "The server failed. Try again later."
    )


def test_server_replies_read_as_words_not_python_reprs() -> None:
    reply = {"channel": ["Wrong size", "must be 1024 x 1024"], "detail": "Bad upload"}
    assert plain_text(reply) == "channel: Wrong size; must be 1024 x 1024; Bad upload"
    assert plain_text([{"message": "no image 7"}]) == "no image 7"
    response = httpx.Response(400, json={"non_field_errors": ["FOV size differs"]})
    assert describe_response(response) == "FOV size differs"
    response = httpx.Response(400, json={"fov_size": ["A valid number is required."]})
    said = describe_response(response)
    assert said == "fov_size: A valid number is required."
    assert "[" not in said and "{" not in said
