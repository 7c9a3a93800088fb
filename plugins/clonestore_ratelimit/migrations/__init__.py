"""The ratelimit plugin's migrations (``clonestore migrate --plugins ratelimit``)."""
