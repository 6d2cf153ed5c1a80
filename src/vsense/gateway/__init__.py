"""The device-facing API (/device/v1): keepalives, payloads, commands; liveness."""
