"""Dataset readers and the synthetic generator: pure Python/NumPy/pandas, no Kedro."""
