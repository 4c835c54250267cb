"""The storage core: segments, partition logs, the catalog, configuration, partitioner.

Synchronous and thread-free; usable without actors.
"""
