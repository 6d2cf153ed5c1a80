"""Application payloads of devices: validation of each type's messages and their metrics.

Pure functions over JSON values, with no database and no HTTP: the device gateway
calls them, stores what they accept and forwards it.
"""
