"""URIs a user pastes or an attacker drops: refused at parse time with a clear, short message."""

from __future__ import annotations

import pytest

import napari_lablink
from napari_lablink.client.errors import ConfigurationError, InvalidURIError
from napari_lablink.client.uri import check_s3_endpoint, parse_uri


@pytest.mark.parametrize("endpoint", ["127.0.0.1:9000", "notaurl", "ftp://host", "http://"])
def test_bad_s3_endpoints_are_refused_when_the_uri_is_parsed(endpoint: str) -> None:
    with pytest.raises(InvalidURIError) as caught:
        parse_uri(f"mikro+http://127.0.0.1:8080/mikro/image/3?s3={endpoint}")
    assert "not an endpoint URL" in str(caught.value) and "s3=http://" in str(caught.value)


def test_good_s3_endpoints_pass() -> None:
    uri = parse_uri("mikro+http://127.0.0.1:8080/mikro/image/3?s3=http://127.0.0.1:9000")
    assert uri.option("s3") == "http://127.0.0.1:9000"
    assert check_s3_endpoint("https://s3.lab.org/") == "https://s3.lab.org/"


def test_a_configured_bad_endpoint_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match="not an endpoint URL"):
        with napari_lablink.connect("mikro+http://127.0.0.1:1/mikro", s3="127.0.0.1:9000") as s:
            s.get("image/3")


@pytest.mark.parametrize(
    "uri",
    [
        "mibi+http://127.0.0.1:8000/images/\u0661",  # Arabic-Indic one
        "mikro+http://127.0.0.1:8080/mikro/image/\u0663",
        "mikro://host:\uff18\uff10/image/3",  # full-width 80
    ],
)
def test_only_ascii_digits_make_ports_and_ids(uri: str) -> None:
    with pytest.raises(InvalidURIError, match="0-9"):
        parse_uri(uri)


def test_a_huge_host_is_refused_with_a_short_message() -> None:
    with pytest.raises(InvalidURIError) as caught:
        parse_uri(f"mikro://{'a' * 70_000}/image/3")
    assert "70000 characters" in str(caught.value) and len(str(caught.value)) < 600


def test_over_long_ids_are_refused_with_a_short_message() -> None:
    with pytest.raises(InvalidURIError) as caught:
        parse_uri(f"mikro://host/image/{'9' * 100_000}")
    assert "100000 characters" in str(caught.value) and len(str(caught.value)) < 600


def test_tracker_ids_must_be_ascii_digits() -> None:
    from napari_lablink.client.errors import NotFoundError
    from napari_lablink.client.tracker.records import checked_id

    class Session:
        label = "mibi://x"

    with pytest.raises(NotFoundError, match="0-9"):
        checked_id(Session(), "\u0661", "image")  # type: ignore[arg-type]
    assert checked_id(Session(), " 12 ", "image") == "12"  # type: ignore[arg-type]
