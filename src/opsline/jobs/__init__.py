"""Training and evaluation jobs run in worker processes, recorded in ``<home>/jobs.db``.

``store`` is the table, ``worker`` the process that runs one job, ``manager`` starts,
cancels and reconciles workers. ``opsline.serving.routes.jobs`` puts them on HTTP.
"""

from opsline.jobs.manager import JobAlreadyFinished, JobManager, JobNotFound
from opsline.jobs.store import Job, JobLimitError, JobStore

__all__ = ["Job", "JobAlreadyFinished", "JobLimitError", "JobManager", "JobNotFound", "JobStore"]
