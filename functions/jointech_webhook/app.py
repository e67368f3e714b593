"""Jointech webhook rules: POST /hooks/jointech/{token}[/{kind}], one URL per data type or one
for all (the kind then told apart by the fields). See devicegate.vendors.jointech.
"""

from devicegate.ingest.handlers import webhook_handler

lambda_handler = webhook_handler("jointech")
