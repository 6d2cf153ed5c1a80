"""The `vsense` command."""
