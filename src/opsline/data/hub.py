"""Loading a Hugging Face dataset split (online only), shared by recipes with an ``hf`` source."""

from __future__ import annotations

from typing import Any

from opsline.errors import NoDatasetError, UsageError


def load_hf_split(data_cfg: Any) -> tuple[str, str, Any]:
    """``(dataset_id, split, records)`` for ``recipe.data.hf_dataset`` / ``hf_split``.

    ``datasets`` is imported here, not at module import: it is optional (only this source
    needs it) and slow to import.

    Raises:
        UsageError: no dataset id configured, or ``datasets`` is not installed.
        NoDatasetError: the dataset cannot be loaded (offline, unknown id, gated), in one
            sentence.
    """
    dataset_id = data_cfg.get("hf_dataset")
    if not dataset_id:
        raise UsageError("recipe.data.source=hf needs recipe.data.hf_dataset=<dataset id>.")
    try:
        import datasets
    except ImportError:
        raise UsageError(
            "recipe.data.source=hf needs the `datasets` package (pip install datasets)."
        ) from None
    split = str(data_cfg.get("hf_split") or "train")
    try:
        records = datasets.load_dataset(str(dataset_id), split=split)
    except Exception as error:  # noqa: BLE001 - offline, unknown id, gated: one sentence
        raise NoDatasetError(
            f"Could not load the Hugging Face dataset {dataset_id!r} "
            f"({type(error).__name__}: {str(error).splitlines()[0]})."
        ) from None
    return str(dataset_id), split, records
