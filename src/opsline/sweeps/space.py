"""The search space: parsed from the ``sweep:`` section of a recipe's config and validated.

A recipe declares one space per model kind (``model.name``)::

    sweep:
      metric: val_rmsle          # a val_* metric of pipeline.train; direction from the recipe
      prune_on: val_loss         # per-epoch metric reported to the pruner
      space:
        mlp:
          model.lr: {type: float, low: 1.0e-4, high: 3.0e-3, log: true}
          model.batch_size: {type: categorical, choices: [32, 64, 128]}

Every key must name a value that exists in the composed config, so a typo is an error
naming the key (exit 2) before any trial runs, never a silently ignored parameter.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from opsline.errors import UsageError

if TYPE_CHECKING:  # pragma: no cover
    from omegaconf import DictConfig

TYPES = ("float", "int", "categorical")
_FIELDS = {
    "float": {"type", "low", "high", "log", "step"},
    "int": {"type", "low", "high", "log", "step"},
    "categorical": {"type", "choices"},
}


@dataclass(frozen=True)
class Param:
    """One searched config key and its distribution."""

    key: str
    type: str
    low: float | None = None
    high: float | None = None
    log: bool = False
    step: float | None = None
    choices: tuple[Any, ...] = ()

    def suggest(self, trial: Any) -> Any:
        """Sample a value for ``trial`` (an ``optuna.Trial``); returns the config value."""
        if self.type == "float":
            return trial.suggest_float(self.key, self.low, self.high, log=self.log, step=self.step)
        if self.type == "int":
            return trial.suggest_int(
                self.key, int(self.low), int(self.high), log=self.log, step=int(self.step or 1)
            )
        labels = [label(c) for c in self.choices]
        picked = trial.suggest_categorical(self.key, labels)
        return self.choices[labels.index(picked)]


@dataclass(frozen=True)
class SweepSpec:
    """What ``sweep:`` says for the chosen model: objective, pruning and the space."""

    metric: str
    direction: str  # "minimize" | "maximize"
    prune_on: str
    space: dict[str, Param]
    n_startup_trials: int = 5
    pruner: dict[str, int] = field(default_factory=dict)


def label(choice: Any) -> Any:
    """Optuna stores only scalars: lists/dicts (e.g. hidden sizes) become JSON strings."""
    return json.dumps(choice) if isinstance(choice, (list, tuple, dict)) else choice


def _bad(key: str, reason: str) -> UsageError:
    return UsageError(f"Invalid sweep space key {key!r}: {reason}.")


def _number(key: str, spec: dict[str, Any], name: str) -> float:
    value = spec.get(name)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise _bad(key, f"{name} must be a finite number, got {value!r}")
    return value


def parse_param(key: str, spec: Any) -> Param:
    """One entry of the space; ``UsageError`` naming ``key`` if it is malformed."""
    if not isinstance(spec, dict):
        raise _bad(key, "expected a mapping like {type: float, low: 0.0, high: 1.0}")
    kind = spec.get("type")
    if kind not in TYPES:
        raise _bad(key, f"unknown type {kind!r} (valid types: {', '.join(TYPES)})")
    unknown = sorted(set(spec) - _FIELDS[kind])
    if unknown:
        raise _bad(
            key,
            f"unknown field(s) {', '.join(unknown)} for type {kind} "
            f"(valid: {', '.join(sorted(_FIELDS[kind]))})",
        )
    if kind == "categorical":
        choices = spec.get("choices")
        if not isinstance(choices, list) or not choices:
            raise _bad(key, "categorical needs a non-empty list of choices")
        if len({json.dumps(c, sort_keys=True) for c in choices}) != len(choices):
            raise _bad(key, "choices contain duplicates")
        return Param(key, kind, choices=tuple(choices))
    low, high = _number(key, spec, "low"), _number(key, spec, "high")
    if low > high:
        raise _bad(key, f"low ({low}) is greater than high ({high})")
    log = bool(spec.get("log", False))
    if log and low <= 0:
        raise _bad(key, f"log scale needs low > 0, got {low}")
    step = spec.get("step")
    if step is not None:
        step = _number(key, spec, "step")
        if step <= 0 or log:
            raise _bad(key, "step must be > 0 and cannot be combined with log")
    if kind == "int" and not all(float(v).is_integer() for v in (low, high, step or 1)):
        raise _bad(key, "int bounds and step must be whole numbers")
    return Param(key, kind, float(low), float(high), log, step)


def _check_key_exists(cfg: DictConfig, key: str) -> None:
    from omegaconf import DictConfig, OmegaConf

    missing = object()
    value = OmegaConf.select(cfg, key, default=missing)
    if value is missing:
        raise _bad(
            key,
            "no such key in the composed config (check the spelling and the "
            "model the overrides select)",
        )
    if isinstance(value, DictConfig):
        raise _bad(key, "it is a config section, not a value")


def load_spec(
    cfg: DictConfig,
    recipe_name: str,
    greater_is_better: bool,
    overrides: list[str] | tuple[str, ...] = (),
) -> SweepSpec:
    """The sweep spec for the model ``cfg`` selects, validated against ``cfg``.

    Raises:
        UsageError: no ``sweep:`` section, no space for this model, a malformed entry or a
            key missing from the config (the message names the key), or a key that is
            both searched and fixed by an override.
    """
    from omegaconf import DictConfig, OmegaConf

    section = cfg.get("sweep")
    where = f"configs/recipe/{recipe_name}.yaml"
    if not isinstance(section, DictConfig) or section.get("space") is None:
        raise UsageError(
            f"Recipe {recipe_name!r} declares no search space: add a `sweep:` "
            f"section with `space:` to {where}."
        )
    raw = OmegaConf.to_container(section, resolve=True)
    model_name = str(OmegaConf.select(cfg, "model.name", default="default"))
    spaces = raw.get("space") or {}
    if model_name not in spaces and "default" not in spaces:
        raise UsageError(
            f"No sweep space for model {model_name!r} of recipe {recipe_name!r}: "
            f"add sweep.space.{model_name} to {where} (spaces exist for: "
            f"{', '.join(spaces) or 'none'})."
        )
    entries = spaces.get(model_name, spaces.get("default"))
    if not isinstance(entries, dict) or not entries:
        raise UsageError(f"sweep.space.{model_name} in {where} is empty.")
    space = {}
    for key, spec in entries.items():
        param = parse_param(str(key), spec)
        _check_key_exists(cfg, param.key)
        space[param.key] = param
    fixed = {o.lstrip("+~").partition("=")[0] for o in overrides}
    both = sorted(fixed & set(space))
    if both:
        raise UsageError(
            f"Invalid sweep space key {both[0]!r}: it is both searched and set "
            f"by an override; drop one of them."
        )
    metric = str(raw.get("metric") or "")
    if not metric.startswith("val_"):
        raise UsageError(
            f"sweep.metric must be a validation metric (val_...), got "
            f"{metric or 'nothing'!r}: tuning on test would leak it."
        )
    direction = raw.get("direction") or ("maximize" if greater_is_better else "minimize")
    if direction not in ("minimize", "maximize"):
        raise UsageError(f"sweep.direction must be minimize or maximize, got {direction!r}.")
    return SweepSpec(
        metric=metric,
        direction=direction,
        prune_on=str(raw.get("prune_on") or "val_loss"),
        space=space,
        n_startup_trials=int(raw.get("n_startup_trials", 5)),
        pruner={k: int(v) for k, v in (raw.get("pruner") or {}).items()},
    )


_PLAIN = re.compile(r"^[A-Za-z_][\w.\-/]*$")


def hydra_value(value: Any) -> str:
    """Format a sampled value as a Hydra override value (``[256,128]``, ``3e-04``, ``'a b'``)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(hydra_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ",".join(f"{k}:{hydra_value(v)}" for k, v in value.items()) + "}"
    text = str(value)
    if _PLAIN.match(text) and text.lower() not in ("true", "false", "null"):
        return text
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def to_overrides(values: dict[str, Any]) -> list[str]:
    """Sampled values → ``key=value`` overrides for :func:`opsline.config.load_config`."""
    return [f"{key}={hydra_value(value)}" for key, value in values.items()]
