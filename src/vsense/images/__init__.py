"""Snapshots: asking a device for images, its uploads, the signed links that serve them."""
