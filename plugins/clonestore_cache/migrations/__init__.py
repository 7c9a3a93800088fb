"""The cache plugin's migrations (``clonestore migrate --plugins cache``)."""
