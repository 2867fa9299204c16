"""TruLayer Python SDK. Not implemented yet: see the SDK issue."""
