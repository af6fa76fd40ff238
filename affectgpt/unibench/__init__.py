"""MER-UniBench: the nine sets, their gold folders, the scorer and the benchmark runner's data."""
