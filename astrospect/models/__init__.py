"""The models: the challenger registry, the CNNs, the baselines, training, calibration, evaluation, prediction."""
