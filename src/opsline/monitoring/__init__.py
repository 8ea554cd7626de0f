"""Monitoring: Prometheus metrics for the server (``metrics``), and later prediction logs,
drift reports and alerts. Submodules import their heavy dependencies themselves."""
