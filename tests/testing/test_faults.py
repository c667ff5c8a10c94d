"""The fault plan shared by both stand-ins: deterministic, filterable, validated."""

from __future__ import annotations

import pytest

from napari_lablink.testing.faults import Faults, InjectedFault


def decisions(faults: Faults, count: int, method: str = "GET") -> list[str | None]:
    return [faults.decide(method, f"/bucket/key{i}") for i in range(count)]


def test_same_seed_same_faults_and_rate_is_respected() -> None:
    first, second = Faults(), Faults()
    for faults in (first, second):
        faults.rate = 0.3
        faults.kinds = {"503", "drop", "slow"}
        faults.seed = 42
    sequence = decisions(first, 400)
    assert sequence == decisions(second, 400)
    hits = [kind for kind in sequence if kind is not None]
    assert 60 < len(hits) < 180  # 0.3 of 400 = 120, far from both bounds
    assert set(hits) == {"503", "drop", "slow"}


def test_reseeding_restarts_the_sequence() -> None:
    faults = Faults()
    faults.rate = 0.5
    faults.seed = 7
    once = decisions(faults, 50)
    faults.seed = 7
    assert decisions(faults, 50) == once


def test_rate_zero_never_faults_and_rate_one_always_does() -> None:
    faults = Faults()
    assert decisions(faults, 100) == [None] * 100
    faults.rate = 1.0
    faults.kinds = {"drop"}
    assert decisions(faults, 10) == ["drop"] * 10


def test_methods_filter_limits_random_faults() -> None:
    faults = Faults()
    faults.rate = 1.0
    faults.methods = ["put"]
    assert decisions(faults, 5, "GET") == [None] * 5
    assert decisions(faults, 5, "PUT") == ["503"] * 5


def test_fail_next_is_consumed_in_order_and_only_by_matching_requests() -> None:
    faults = Faults()
    faults.fail_next(1, "drop", path_contains="/zarr.json")
    faults.fail_next(2, "503", methods=["GET"])
    assert faults.pending == 3
    assert faults.decide("PUT", "/b/k") is None  # matches neither plan
    assert faults.decide("GET", "/b/c/0/0") == "503"
    assert faults.decide("GET", "/b/k/zarr.json") == "drop"
    assert faults.decide("GET", "/b/c/0/1") == "503"
    assert faults.decide("GET", "/b/c/0/2") is None
    assert faults.pending == 0
    assert faults.injected == [
        InjectedFault("503", "GET", "/b/c/0/0"),
        InjectedFault("drop", "GET", "/b/k/zarr.json"),
        InjectedFault("503", "GET", "/b/c/0/1"),
    ]


def test_clear_stops_all_faults() -> None:
    faults = Faults()
    faults.rate = 1.0
    faults.fail_next(3)
    faults.clear()
    assert faults.pending == 0
    assert decisions(faults, 5) == [None] * 5


@pytest.mark.parametrize("rate", [-0.1, 1.5])
def test_rate_outside_0_1_is_refused(rate: float) -> None:
    with pytest.raises(ValueError, match=r"within 0\.\.1"):
        Faults().rate = rate


def test_unknown_kind_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown fault kinds"):
        Faults().kinds = {"503", "teapot"}
    with pytest.raises(ValueError, match="unknown fault kinds"):
        Faults().fail_next(1, "timeout")


def test_per_kind_rates_from_a_spec_are_respected() -> None:
    faults = Faults()
    faults.seed = 3
    faults.rates = "503=0.1,drop=0.1,slow=0.1,lost=0.1"
    seen = decisions(faults, 4000, "POST")
    for kind in ("503", "drop", "slow", "lost"):
        assert 300 < seen.count(kind) < 500, kind
    assert 2000 < seen.count(None) < 2800
    faults.clear()
    assert faults.rates == {} and decisions(faults, 50) == [None] * 50


@pytest.mark.parametrize("spec", ["503=2", "flaky=0.1", "503", "503=0.6,drop=0.6", "drop=x"])
def test_bad_fault_specs_are_refused(spec: str) -> None:
    with pytest.raises(ValueError):
        Faults().rates = spec


def _request_upload(mikro) -> None:
    """Ask the stand-in for an upload store (it registers one) over plain HTTP."""
    import httpx

    httpx.post(
        mikro.gen2_graphql_url,
        json={"query": "mutation { requestZarrUpload(input: {}) { store } }"},
        headers={"Authorization": f"Bearer {mikro.token}"},
    )


def test_a_lost_answer_acts_then_hangs_up(mikro) -> None:
    """The server registers the store, the client never hears of it."""
    import httpx

    mikro.faults.fail_next(1, "lost", path_contains="mikro")
    before = len(mikro.state.stores)
    with pytest.raises(httpx.RemoteProtocolError):
        _request_upload(mikro)
    assert len(mikro.state.stores) == before + 1


def test_a_late_answer_hangs_up_then_acts(mikro, monkeypatch) -> None:
    """The server is still working on a request its client has given up on."""
    import time

    import httpx

    monkeypatch.setattr(mikro.faults, "slow_seconds", 0.3)
    mikro.faults.fail_next(1, "late", path_contains="mikro")
    before = len(mikro.state.stores)
    with pytest.raises(httpx.RemoteProtocolError):
        _request_upload(mikro)
    assert len(mikro.state.stores) == before  # hung up before acting
    deadline = time.monotonic() + 10
    while len(mikro.state.stores) == before and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(mikro.state.stores) == before + 1
