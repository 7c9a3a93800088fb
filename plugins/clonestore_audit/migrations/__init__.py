"""The audit plugin's migrations (``clonestore migrate --plugins audit``)."""
