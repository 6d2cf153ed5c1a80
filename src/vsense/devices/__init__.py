"""The integrator device API: list, read, update, onboard, remove, rotate credentials."""
