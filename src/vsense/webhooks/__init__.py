"""Webhooks: endpoints of integrators, the events sent to them, and their delivery."""
