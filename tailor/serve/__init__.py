"""Serving: loading trained or foundation models for inference and generating answers."""
