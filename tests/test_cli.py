"""The command line: ``napari-lablink serve`` prints its JSON line and stops cleanly on SIGTERM."""

from __future__ import annotations

import json
import signal
import subprocess
import sys

import httpx
import pytest

from napari_lablink.cli import build_parser


@pytest.mark.parametrize("kind", ["mikro", "tracker"])
def test_serve_prints_one_json_line_and_stops_on_sigterm(kind: str) -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "napari_lablink.cli", "serve", kind, "--demo"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        info = json.loads(process.stdout.readline())
        uris = info["uris"] if kind == "mikro" else info["images"]
        assert uris and all(
            u.startswith(("mikro+http://127.0.0.1", "mibi+http://127.0.0.1"))
            for u in (uris.values() if isinstance(uris, dict) else uris)
        )
        if kind == "mikro":
            reply = httpx.post(
                info["graphql"]["gen2"],
                json={"query": "{ images { id name } }"},
                headers={"Authorization": f"Bearer {info['token']}"},
            )
            assert {i["name"] for i in reply.json()["data"]["images"]} >= {"Tissue pyramid"}
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=20) == 0
    finally:
        process.kill()
        process.communicate()


def test_help_lists_the_commands() -> None:
    text = build_parser().format_help()
    assert "serve" in text and "demo" in text


def test_serve_takes_a_fault_spec_and_refuses_a_bad_one(capsys) -> None:
    args = build_parser().parse_args(["serve", "tracker", "--faults", "503=0.1,lost=0.05"])
    assert args.faults == "503=0.1,lost=0.05"
    with pytest.raises(SystemExit):
        build_parser().parse_args(["serve", "mikro", "--faults", "503=lots"])
    assert "KIND=PROBABILITY" in capsys.readouterr().err


def test_serve_mikro_with_faults_misbehaves_as_asked() -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "napari_lablink.cli", "serve", "mikro", "--faults", "503=1"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        info = json.loads(process.stdout.readline())
        assert info["faults"] == {"503": 1.0}
        reply = httpx.post(info["graphql"]["gen2"], json={"query": "{ images { id } }"})
        assert reply.status_code == 503
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=20) == 0
    finally:
        process.kill()
        process.communicate()
