"""The only package that imports mlflow: runs, lineage, the model registry and aliases."""
