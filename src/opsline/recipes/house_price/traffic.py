"""House-price traffic for trying the monitoring loop on a served model.

Real houses from a prepared split (the test split by default, which the model never saw)
are sent to a running server as ``/predict/batch`` requests — as they are, or as a moved
market (``--drift``: the same houses 1.8 times as large and built 40 years earlier) — and
``--feedback`` then posts their sale prices as ground truth (60 % higher for the moved
market)::

    python -m opsline.recipes.house_price.traffic --rows 300            # reference-like
    python -m opsline.recipes.house_price.traffic --rows 300 --drift --feedback

The closed-loop walkthrough (docs/monitoring/closed-loop.md) uses it, and the closed-loop
test builds its traffic from the same functions. Moved houses stay within the data
contract (living area up to 4000 sq ft), so a retrain on their feedback passes validation.
"""

from __future__ import annotations

import argparse
import os
import sys
import uuid
from typing import Any

AREAS = ("gr_liv_area", "first_flr_sf", "second_flr_sf", "total_bsmt_sf", "garage_area")
YEARS = ("year_built", "year_remod_add")
GROWTH, AGEING, PRICE_RISE = 1.8, 40, 1.6
MAX_LIVING_AREA = 4000  # the data checks' upper bound (recipes/house_price/checks)
BATCH = 1000  # the server's default OPSLINE_MAX_BATCH_SIZE


def split_requests(split: str = "test") -> list[tuple[dict[str, Any], float]]:
    """(request JSON, sale price) for each row of the workspace's prepared ``split`` that
    makes a valid request."""
    from opsline.data.dataset import load_dataset
    from opsline.recipes.house_price.data import TARGET
    from opsline.recipes.registry import get_recipe
    from opsline.workspace import data_dir

    recipe = get_recipe("house_price")
    frame = load_dataset(data_dir("house_price"), "house_price").frame(split)
    pairs = []
    for i in range(len(frame)):
        row = frame.iloc[i : i + 1]
        made = recipe.requests_from_frame(row)
        if made:
            pairs.append(
                (made[0].model_dump(mode="json", exclude_none=True), float(row[TARGET].iloc[0]))
            )
    return pairs


def movable(house: dict[str, Any]) -> bool:
    """Still a house the data contract accepts once moved (see :func:`drifted`)."""
    return float(house["gr_liv_area"]) * GROWTH <= MAX_LIVING_AREA


def drifted(house: dict[str, Any]) -> dict[str, Any]:
    """The same house in a moved market: 1.8 times as large, built 40 years earlier."""
    moved = dict(house)
    for name in AREAS:
        if name in moved:
            moved[name] = moved[name] * GROWTH
    for name in YEARS:
        if name in moved:
            moved[name] = max(moved[name] - AGEING, 1800)
    return moved


def traffic(rows: int, *, drift: bool, split: str = "test") -> list[tuple[dict[str, Any], float]]:
    """``rows`` (request, true price) pairs, moved when ``drift`` (cycling if the split is
    smaller)."""
    pairs = split_requests(split)
    if drift:
        pairs = [(drifted(h), price * PRICE_RISE) for h, price in pairs if movable(h)]
    if not pairs:
        raise SystemExit(f"The {split} split has no rows that make a request.")
    return [pairs[i % len(pairs)] for i in range(rows)]


def send(
    url: str, pairs: list[tuple[dict[str, Any], float]], *, feedback: bool, api_key: str | None
) -> str:
    """Post the requests in batches (and their prices as feedback); a one-line summary."""
    import httpx

    run = uuid.uuid4().hex[:8]
    labels: list[dict[str, Any]] = []
    with httpx.Client(base_url=url, timeout=120) as http:
        for start in range(0, len(pairs), BATCH):
            chunk = pairs[start : start + BATCH]
            batch_id = f"traffic-{run}-{start // BATCH}"
            answer = http.post(
                "/predict/batch",
                json={"items": [h for h, _ in chunk]},
                headers={"X-Request-ID": batch_id},
            )
            if answer.status_code != 200:
                raise SystemExit(
                    f"POST /predict/batch answered {answer.status_code}: {answer.text[:300]}"
                )
            labels += [
                {"request_id": f"{batch_id}/{i}", "actual": price}
                for i, (_, price) in enumerate(chunk)
            ]
        said = f"sent {len(pairs)} requests to {url} (ids traffic-{run}-…)"
        if not feedback:
            return said
        if not api_key:
            raise SystemExit(
                "Feedback needs the server's API key: set OPSLINE_API_KEY or pass --api-key."
            )
        stored = 0
        for start in range(0, len(labels), BATCH):
            answer = http.post(
                "/feedback", json=labels[start : start + BATCH], headers={"X-API-Key": api_key}
            )
            if answer.status_code != 200:
                raise SystemExit(
                    f"POST /feedback answered {answer.status_code}: {answer.text[:300]}"
                )
            stored += answer.json()["stored"]
            quality = answer.json()["quality"]
        live = ", ".join(f"{k} {v:.3g}" for k, v in quality.items()) or "none yet"
        return f"{said}; feedback stored for {stored}; live quality: {live}"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m opsline.recipes.house_price.traffic",
        description="Send real houses (or a moved market) to a served house_price model.",
    )
    parser.add_argument(
        "--url",
        default=f"http://{os.environ.get('HOST', '127.0.0.1')}:{os.environ.get('PORT', '8000')}",
    )
    parser.add_argument("--rows", type=int, default=300, help="requests to send")
    parser.add_argument("--split", default="test", choices=["train", "val", "test"])
    parser.add_argument(
        "--drift", action="store_true", help="larger (x1.8), older (-40 years) houses"
    )
    parser.add_argument(
        "--feedback", action="store_true", help="then post their sale prices (x1.6 with --drift)"
    )
    parser.add_argument("--api-key", default=os.environ.get("OPSLINE_API_KEY"))
    args = parser.parse_args(argv)
    if args.rows < 1:
        parser.error("--rows must be at least 1")
    import httpx

    from opsline.errors import OpslineError

    try:
        print(
            send(
                args.url,
                traffic(args.rows, drift=args.drift, split=args.split),
                feedback=args.feedback,
                api_key=args.api_key,
            )
        )
    except httpx.HTTPError as error:
        sys.exit(f"Could not reach the server at {args.url}: {error}. Is `make run` serving?")
    except OpslineError as error:  # no prepared data: run the pipeline first
        sys.exit(str(error))


if __name__ == "__main__":
    main()
