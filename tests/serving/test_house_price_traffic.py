"""``python -m opsline.recipes.house_price.traffic``, the closed-loop walkthrough's traffic, against
a live server: moved houses are answered, logged and labelled; no server is one sentence."""

from __future__ import annotations

from pathlib import Path

import pytest

from opsline.recipes.house_price import traffic

from .conftest import live_server

KEY = "traffic-key"


def test_moved_houses_are_sent_and_their_prices_stored(
    trained_workspace: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from opsline.serving.app import create_app
    from opsline.serving.settings import ServingSettings

    settings = ServingSettings(
        recipe="house_price",
        ui=False,
        api_key=KEY,
        drift_interval_s=0,
        reload_interval_s=0,
        retrain_policy="off",
    )
    with live_server(create_app(settings)) as url:
        traffic.main(["--url", url, "--rows", "12", "--drift", "--feedback", "--api-key", KEY])
    said = capsys.readouterr().out.strip()
    assert said.startswith(f"sent 12 requests to {url} (ids traffic-")
    assert "; feedback stored for 12; live quality: rmsle " in said


def test_moved_houses_are_larger_older_and_still_valid(trained_workspace: Path) -> None:
    house, _ = traffic.split_requests()[0]
    moved = traffic.drifted(house)
    assert moved["gr_liv_area"] == pytest.approx(house["gr_liv_area"] * traffic.GROWTH)
    assert moved["year_built"] == max(house["year_built"] - traffic.AGEING, 1800)
    pairs = traffic.traffic(5, drift=True)
    assert all(p["gr_liv_area"] <= traffic.MAX_LIVING_AREA for p, _ in pairs)


def test_no_server_is_one_sentence(trained_workspace: Path) -> None:
    with pytest.raises(SystemExit) as stopped:
        traffic.main(["--url", "http://127.0.0.1:9", "--rows", "2"])
    assert str(stopped.value).startswith("Could not reach the server at http://127.0.0.1:9")
