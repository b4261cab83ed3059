"""Placeholder: fixtures come with issue 19."""

__all__: list[str] = []
