"""Where WorkflowManagers run. The engine talks to a backend only through submit/cancel/kill and
a queue of events (`backends.base`), so another backend (a cluster) can replace the local one.

Nothing is imported here: the CLI starts the launcher (`backends.launcher`) before it loads the
models the backends need, and the remote guard (`backends.remote.guard`, one per task on a Dask
worker) needs none of them."""
