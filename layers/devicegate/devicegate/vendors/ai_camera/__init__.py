"""AI camera box: POSTs `{"operator": ..., "deviceInfo": {...}, "info": {...}}` to one URL and
takes its configuration (heartbeat interval, send mode, detection switches) from the answer."""
