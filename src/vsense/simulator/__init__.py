"""The simulated fleet: sensors that talk to a vsense server the way real ones do.

`scenes` holds one sensor's world per application type (a car park, a yard, counting
zones, barrier lines, crowds) and turns it into messages of `spec/devices.md`;
`enrolment` onboards devices through the SDK (`vsense.client.AsyncClient`); `fleet`
drives thousands of them from one process through a `transport` (`http` for the
device API, `mqtt` for a broker); `command` is the `vsense simulate` command.

This package imports nothing of the server (only the SDK), so it behaves like any
third-party device and can run against any server.
"""
