"""Device authentication: the device behind a device token, for every device route."""
