"""What the stages share: params, paths, atomic writes, errors, the model and its formats, the
training data and processes, the result files. The stage entry points are the modules beside
this folder, one per stage of dvc.yaml."""
