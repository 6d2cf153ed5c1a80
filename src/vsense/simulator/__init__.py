"""The simulated fleet: sensors that talk to a vsense server the way real ones do.

`scenes` holds one sensor's world per application type (a car park, a yard, counting
zones, barrier lines, crowds) and turns it into messages of `spec/devices.md`;
`fleet` onboards devices through the integrator API and drives thousands of them
over the device API from one process; `command` is the `vsense simulate` command.

This package talks to the server over HTTP only and imports nothing else from
`vsense`, so it behaves like any third-party device and can run against any server.
"""
