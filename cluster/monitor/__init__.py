"""The resource monitor: a child process of the node service that hosts the resources.

`python -m cluster.monitor` is the process (`__main__`), `host.ResourceHost` runs the resources
inside it, `protocol` is the JSON-lines contract and `client.MonitorClient` is the service's end.
"""
