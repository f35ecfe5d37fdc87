"""Steps of the example house-price pipeline (numpy only, runs in seconds)."""
