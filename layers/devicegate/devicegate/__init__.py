"""devicegate: the shared ingest pipeline, vendor adapters and storage, shipped as a Lambda layer."""
