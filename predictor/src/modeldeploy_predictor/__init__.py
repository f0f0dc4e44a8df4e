"""modeldeploy predictor: model bundles and the scikit-learn model server."""
