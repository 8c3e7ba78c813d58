"""The worker side of the Dask backend: a task run on another machine, its repository, its guard."""
