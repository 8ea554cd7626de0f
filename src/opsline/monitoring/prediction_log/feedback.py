"""Ground truth fed back per request id, and the predictions joined with it."""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from typing import Any

from opsline.monitoring.prediction_log.schema import (
    PRIMARY,
    Labelled,
    LogTables,
    chunks,
    dumps,
    loads,
)


class FeedbackMixin(LogTables):
    """:class:`PredictionLog`'s ``feedback`` table: written by ``POST /feedback``, read by
    live quality and the retrain's labelled rows."""

    def unknown_ids(self, request_ids: Iterable[str]) -> list[str]:
        """The ids in ``request_ids`` that no logged prediction carries."""
        import sqlalchemy as sa

        wanted = list(dict.fromkeys(request_ids))
        found: set[str] = set()
        with self._engine.connect() as conn:
            for chunk in chunks(wanted, 500):
                query = (
                    sa.select(self.predictions.c.request_id)
                    .distinct()
                    .where(self.predictions.c.request_id.in_(chunk))
                )
                found.update(conn.execute(query).scalars())
        return [i for i in wanted if i not in found]

    def add_feedback(self, items: Sequence[tuple[str, Any]]) -> list[bool]:
        """Store the actual outcome per request id; a later value replaces an earlier one.

        Returns, per item, whether it updated an existing feedback (False = created). The
        caller checks :meth:`unknown_ids` first; all items go in one transaction.
        """
        import sqlalchemy as sa

        now = time.time()
        updated: list[bool] = []
        with self._lock, self._engine.begin() as conn:
            for request_id, actual in items:
                result = conn.execute(
                    sa.update(self.feedback)
                    .where(self.feedback.c.request_id == request_id)
                    .values(actual=dumps(actual), ts=now, updates=self.feedback.c.updates + 1)
                )
                if result.rowcount:
                    updated.append(True)
                else:
                    conn.execute(
                        sa.insert(self.feedback).values(
                            request_id=request_id, actual=dumps(actual), ts=now, updates=0
                        )
                    )
                    updated.append(False)
        return updated

    def labelled(
        self,
        model: str,
        *,
        last: int | None = None,
        since: float | None = None,
        role: str = PRIMARY,
        version: str | None = None,
    ) -> list[Labelled]:
        """Predictions of the window (of one ``version``, if given) that have feedback,
        oldest first."""
        import sqlalchemy as sa

        p, f = self.predictions.c, self.feedback.c
        query = sa.select(
            p.request_id,
            p.ts,
            p.version,
            p.request,
            p.prediction,
            p.predicted_value,
            f.actual,
            p.features,
        ).join(self.feedback, f.request_id == p.request_id)
        query = self._window(query, model, role, last, since, version)
        with self._engine.connect() as conn:
            rows = [
                Labelled(
                    r.request_id,
                    r.ts,
                    r.version,
                    r.request,
                    r.prediction,
                    r.predicted_value,
                    loads(r.actual),
                    r.features,
                )
                for r in conn.execute(query)
            ]
        rows.reverse()
        return rows
