"""Training core: pure PyTorch/NumPy. Imports nothing from Kedro or MLflow."""
