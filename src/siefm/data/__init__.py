"""Episode data: storage in the LeRobot v3.0 layout, subsets, the Stage 1 sampler and normalisation."""
