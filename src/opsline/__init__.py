"""opsline: from raw data to a monitored, load-tested ML service."""

__version__ = "0.1.0"
