"""Stored documents rendered in the standards downstream systems already read."""
