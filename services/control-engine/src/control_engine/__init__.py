"""The control-engine: owns configuration and appends every change to ``trulayer.config``."""
