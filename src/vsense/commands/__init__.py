"""Device commands: created by a domain (a snapshot, later alerts and updates), handed
to the device by its keepalive answer, its long poll or an MQTT push, completed by its
result, expired when untaken."""
