"""Reading the log off the request path: counts, drift windows, shadow pairs, export."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from opsline.monitoring.prediction_log.schema import PRIMARY, SHADOW, LogTables, loads

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd


class QueriesMixin(LogTables):
    """:class:`PredictionLog`'s reads (drift, the promotion gate, ``opsline monitor``)."""

    def count(self, model: str, *, since: float | None = None, role: str = PRIMARY) -> int:
        """Logged predictions of ``model`` (since a unix time)."""
        import sqlalchemy as sa

        c = self.predictions.c
        query = (
            sa.select(sa.func.count())
            .select_from(self.predictions)
            .where(c.model == model, c.role == role)
        )
        if since is not None:
            query = query.where(c.ts >= since)
        with self._engine.connect() as conn:
            return int(conn.execute(query).scalar_one())

    def shadow_count(self, model: str, version: str | None) -> int:
        """Requests of ``model`` answered by both the primary and a shadow of ``version``.

        What the promotion gate checks (``promotion.shadow_min_requests``). ``version`` is
        as the server logged it: the candidate's version when it is registered under the
        served model's name (``"4"``), ``"<name>/<version>"`` under another name, ``None``
        for a directory.
        """
        import sqlalchemy as sa

        shadow = self.predictions.alias("shadow")
        primary = self.predictions.alias("primary_rows")
        matched = sa.exists().where(
            primary.c.request_id == shadow.c.request_id,
            primary.c.role == PRIMARY,
            primary.c.model == shadow.c.model,
        )
        query = sa.select(sa.func.count(sa.distinct(shadow.c.request_id))).where(
            shadow.c.model == model,
            shadow.c.role == SHADOW,
            matched,
            shadow.c.version.is_(None) if version is None else shadow.c.version == str(version),
        )
        with self._engine.connect() as conn:
            return int(conn.execute(query).scalar_one())

    def features(
        self,
        model: str,
        *,
        last: int | None = None,
        since: float | None = None,
        role: str = PRIMARY,
    ) -> pd.DataFrame:
        """Monitored features of the window (the newest ``last`` rows and/or those since a
        unix time), oldest first: one column per feature."""
        import pandas as pd
        import sqlalchemy as sa

        query = self._window(sa.select(self.predictions.c.features), model, role, last, since)
        with self._engine.connect() as conn:
            rows = [loads(f) for f in conn.execute(query).scalars()]
        rows.reverse()
        return pd.DataFrame.from_records(rows)

    def frame(self, model: str, *, since: float | None = None) -> pd.DataFrame:
        """Every logged row of ``model`` (both roles) with its feedback, oldest first, for
        export: metadata columns, the JSON columns, and one ``feature.<name>`` column each."""
        import pandas as pd
        import sqlalchemy as sa

        p, f = self.predictions.c, self.feedback.c
        query = (
            sa.select(
                p.request_id,
                p.ts,
                p.model,
                p.version,
                p.role,
                p.predicted_value,
                p.latency_ms,
                p.prediction,
                p.request,
                p.features,
                f.actual.label("actual"),
            )
            .outerjoin(self.feedback, f.request_id == p.request_id)
            .where(p.model == model)
        )
        if since is not None:
            query = query.where(p.ts >= since)
        query = query.order_by(p.ts, p.id)
        with self._engine.connect() as conn:
            frame = pd.read_sql(query, conn)
        features = pd.DataFrame.from_records(
            [loads(x) for x in frame.pop("features")], index=frame.index
        )
        frame["time"] = pd.to_datetime(frame["ts"], unit="s", utc=True)
        return pd.concat([frame, features.add_prefix("feature.")], axis=1)

    def pairs(
        self, model: str, *, last: int | None = None, since: float | None = None
    ) -> list[dict[str, Any]]:
        """Shadow rows joined with the primary row of the same request (and feedback)."""
        import sqlalchemy as sa

        shadow = self.predictions.alias("shadow")
        primary = self.predictions.alias("primary_rows")
        f = self.feedback.c
        query = (
            sa.select(
                shadow.c.request_id,
                shadow.c.ts,
                shadow.c.version,
                shadow.c.prediction,
                shadow.c.predicted_value,
                primary.c.version,
                primary.c.prediction,
                primary.c.predicted_value,
                f.actual,
            )
            .join(
                primary,
                sa.and_(
                    primary.c.request_id == shadow.c.request_id,
                    primary.c.role == PRIMARY,
                    primary.c.model == shadow.c.model,
                ),
            )
            .outerjoin(self.feedback, f.request_id == shadow.c.request_id)
            .where(shadow.c.model == model, shadow.c.role == SHADOW)
        )
        if since is not None:
            query = query.where(shadow.c.ts >= since)
        query = query.order_by(shadow.c.ts.desc(), shadow.c.id.desc())
        if last is not None:
            query = query.limit(int(last))
        keys = (
            "request_id",
            "ts",
            "shadow_version",
            "shadow_prediction",
            "shadow_value",
            "primary_version",
            "primary_prediction",
            "primary_value",
            "actual",
        )
        with self._engine.connect() as conn:
            rows = [dict(zip(keys, row, strict=True)) for row in conn.execute(query)]
        for row in rows:
            row["actual"] = None if row["actual"] is None else loads(row["actual"])
        rows.reverse()
        return rows
