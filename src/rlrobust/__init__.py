"""rlrobust: policy-gradient training of image classifiers and honest robustness evaluation."""

__version__ = "0.1.0"
