"""A DVC project over the opsline commands (``opsline dvc init``): ``stages`` turns a composed
config into ``params.yaml`` and ``dvc.yaml`` (pure), ``deps`` finds each stage's code and
config dependencies, ``project`` writes the files, the git/DVC setup and the remote."""
