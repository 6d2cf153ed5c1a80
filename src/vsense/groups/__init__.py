"""Device groups: visibility for standard users and a keepalive interval for their devices."""
