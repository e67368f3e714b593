"""Mettax webhook: POST /hooks/mettax/{token}[/{service}], one URL per pushed service or one for
all. See devicegate.vendors.mettax.
"""

from devicegate.ingest.handlers import webhook_handler

lambda_handler = webhook_handler("mettax")
