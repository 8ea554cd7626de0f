"""Datasets on disk: manifests and content hashes, splits, the validation runner."""
