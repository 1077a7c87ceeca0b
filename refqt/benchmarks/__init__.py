"""Timing and memory benchmarks of refqt's hot spots (``python -m refqt.benchmarks.conv``)."""
