from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from napari_lablink import InvalidURIError, parse_uri
from napari_lablink.client.uri import RemoteURI, is_remote_uri, parse_server_uri

KIND_NAMES = {"representation", "image", "images", "runs"}

segment = st.text(
    alphabet=st.characters(codec="utf-8", exclude_characters="/\x00", exclude_categories=["Cs"]),
    min_size=1,
    max_size=12,
).filter(lambda s: s not in KIND_NAMES and s.strip() == s and s not in {".", ".."})
host = st.one_of(
    st.from_regex(r"[a-z][a-z0-9-]{0,10}(\.[a-z][a-z0-9-]{0,10}){0,2}", fullmatch=True).filter(
        lambda h: not h.endswith("-")
    ),
    st.just("127.0.0.1"),
    st.just("[::1]"),
)
port = st.one_of(st.none(), st.integers(1, 65535))
prefix = st.lists(segment, max_size=2)
#: The s3 option must be an endpoint URL (checked when parsing); other options are free text.
endpoint = st.builds(
    lambda scheme, host, port: f"{scheme}://{host}" + (f":{port}" if port else ""),
    st.sampled_from(["http", "https"]),
    st.sampled_from(["127.0.0.1", "s3.lab.org"]),
    st.one_of(st.none(), st.integers(1, 65535)),
)
options = st.lists(
    st.one_of(
        st.tuples(st.just("s3"), endpoint),
        st.tuples(st.sampled_from(["token_ref", "x"]), st.text("abc:/0123.", max_size=8)),
    ),
    max_size=2,
    unique_by=lambda kv: kv[0],
)


@st.composite
def uris(draw) -> RemoteURI:
    scheme = draw(st.sampled_from(["mikro", "mibi", "pims"]))
    common = dict(
        host=draw(host),
        port=draw(port),
        secure=draw(st.booleans()),
        options=tuple(draw(options)),
    )
    pre = draw(prefix)
    if scheme == "pims":
        path = "/".join(draw(st.lists(segment, min_size=1, max_size=4)))
        return RemoteURI(scheme="pims", kind="file", object_id=path, **common)
    from urllib.parse import quote

    encoded = "".join("/" + quote(s, safe="-._~!$&'()*+,;=:@") for s in pre)
    if scheme == "mikro":
        kind = draw(st.sampled_from(["representation", "image"]))
        object_id = draw(st.one_of(st.none(), segment))
        return RemoteURI(scheme="mikro", kind=kind, object_id=object_id, prefix=encoded, **common)
    kind = draw(st.sampled_from(["images", "runs"]))
    fov = draw(segment) if kind == "runs" and draw(st.booleans()) else None
    return RemoteURI(
        scheme="mibi", kind=kind, object_id=draw(segment), fov=fov, prefix=encoded, **common
    )


@given(uris())
def test_printing_and_parsing_round_trip(uri: RemoteURI) -> None:
    assert parse_uri(str(uri)) == uri


@given(uris())
def test_server_part_reparses_as_the_same_server(uri: RemoteURI) -> None:
    server = parse_server_uri(uri.server)
    assert (server.scheme, server.host, server.port, server.prefix, server.secure) == (
        uri.scheme,
        uri.host,
        uri.port,
        uri.prefix,
        uri.secure,
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "mikro://mikro.example.org/representation/42",
            dict(scheme="mikro", kind="representation", object_id="42", secure=True, prefix=""),
        ),
        (
            "mikro+http://127.0.0.1:8080/mikro/image/7?s3=http://127.0.0.1:9000",
            dict(kind="image", object_id="7", port=8080, prefix="/mikro", secure=False),
        ),
        ("mibi://h/runs/20180122_1242_1243/FOV1", dict(object_id="20180122_1242_1243", fov="FOV1")),
        ("mibi+https://h:8443/api/images/12", dict(kind="images", prefix="/api", port=8443)),
        ("pims+http://h:5000/upload-1/a%20b.tif", dict(kind="file", object_id="upload-1/a b.tif")),
        ("mikro+http://h/image", dict(kind="image", object_id=None)),
    ],
)
def test_documented_forms(text: str, expected: dict) -> None:
    uri = parse_uri(text)
    for name, value in expected.items():
        assert getattr(uri, name) == value


def test_base_url_and_server_key() -> None:
    uri = parse_uri("mikro+http://127.0.0.1:8080/mikro/image/7?s3=http://127.0.0.1:9000")
    assert uri.base_url == "http://127.0.0.1:8080/mikro"
    assert uri.server_key == "127.0.0.1:8080"
    assert uri.option("s3") == "http://127.0.0.1:9000"
    assert parse_uri("mikro://h/image/1").server_key == "h:443"
    assert parse_uri("mikro+http://h/image/1").server_key == "h:80"


@pytest.mark.parametrize(
    ("text", "reason", "example"),
    [
        ("http://h/image/1", "unknown scheme 'http'", "mikro://"),
        ("mikro:/h/image/1", "does not start with SCHEME://", "pims://"),
        ("mikro://h/frame/1", "must end in /representation/... or /image/...", "representation/42"),
        ("mikro://h:0/image/1", "port '0'", "mikro://"),
        ("mikro://h:http/image/1", "port 'http'", "mikro://"),
        ("mikro://user:pw@h/image/1", "credentials in the URI are not allowed", "mikro://"),
        ("mibi://h/images", "must end in /images/... or /runs/...", "runs/20180122_1242_1243/FOV1"),
        ("pims://h", "path of the image file", "pims://pims.example.org"),
        ("mikro://h//image/1", "empty segment", "mikro://"),
        ("mikro://bad_host!/image/1", "not a valid host name", "mikro://"),
    ],
)
def test_malformed_uris_say_what_is_wrong_and_show_an_example(
    text: str, reason: str, example: str
) -> None:
    with pytest.raises(InvalidURIError) as info:
        parse_uri(text)
    message = str(info.value)
    assert reason in message
    assert "Valid examples: " in message and example in message


def test_query_is_not_echoed_in_errors() -> None:
    with pytest.raises(InvalidURIError) as info:
        parse_uri("mikro://h/nothing?token=s3cr3t-value")
    assert "s3cr3t-value" not in str(info.value)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("mikro://h/image/1", True),
        ("pims+http://h/a.tif", True),
        ("/data/image.tif", False),
        ("https://example.org/x.zarr", False),
        (None, False),
    ],
)
def test_is_remote_uri(value: object, expected: bool) -> None:
    assert is_remote_uri(value) is expected
